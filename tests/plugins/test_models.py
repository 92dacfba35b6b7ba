"""Every model validator: good declarations build, bad ones fail naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from connector_core import (
    Access,
    Action,
    ApiKeyAuth,
    Callback,
    ClientAuthMethod,
    ConnectionTest,
    CredentialField,
    DeclarationError,
    Environment,
    FieldKind,
    FieldLevel,
    HttpBasicAuth,
    Link,
    ManualStep,
    OAuth2AuthorizationCode,
    Procedure,
    Provider,
    ProviderDeclaration,
    ReconnectKind,
    ReconnectPolicy,
    Scope,
    ScopeCatalogue,
    ScopeGroup,
    SetupGuide,
    SetupStep,
    UnknownNameError,
    ValidationError,
)

OAUTH = OAuth2AuthorizationCode(authorize_url="https://auth.example.com/a", token_url="https://auth.example.com/t")


def catalogue(**kw: Any) -> ScopeCatalogue:
    args: dict[str, Any] = dict(
        groups=[ScopeGroup("core", "Core", [Scope("a:read", "A", "read"), Scope("a:write", "A w", "write")])],
        default_scopes=["a:read", "a:write"],
        minimum_scopes=["a:read"],
    )
    args.update(kw)
    return ScopeCatalogue(**args)


def declaration(**kw: Any) -> ProviderDeclaration:
    args: dict[str, Any] = dict(
        provider=Provider("acme", "Acme"),
        plugin="acme-plugin",
        auth_types=[OAUTH],
        credential_fields=[CredentialField("client_id", "Client ID", "oauth2")],
        environments=[Environment("prod", "Production", "production", "https://api.example.com")],
        scope_catalogue=catalogue(),
        callback=Callback("/cb/acme"),
    )
    args.update(kw)
    return ProviderDeclaration(**args)


def test_models_are_frozen_and_evolvable() -> None:
    p = Provider("acme", "Acme", categories=["hris", "crm", "hris"])
    assert p.categories == ("crm", "hris")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.key = "other"  # type: ignore[misc]
    assert attrs.evolve(p, display_name="Acme Inc").display_name == "Acme Inc"


def test_http_methods_are_upper_cased() -> None:
    assert Action("list", "List", ["a:read"], method="get").method == "GET"
    assert ConnectionTest("post", "/x", "a:read").method == "POST"


def test_enum_fields_accept_values_and_members() -> None:
    assert CredentialField("x", "X", "oauth2", kind="secret").kind is FieldKind.SECRET
    assert CredentialField("x", "X", "oauth2", level=FieldLevel.USER).level is FieldLevel.USER
    assert Scope("s", "d", Access.WRITE).access is Access.WRITE
    assert attrs.evolve(OAUTH, client_auth_method="client_secret_post").client_auth_method is (
        ClientAuthMethod.CLIENT_SECRET_POST
    )


BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: Provider("Acme", "Acme"), "Provider.key: expected a lower-case key"),
    (lambda: Provider("acme", ""), "Provider.display_name: expected a non-empty string"),
    (lambda: Provider("acme", "A", categories=["Bad Cat"]), "Provider.categories: expected a lower-case category"),
    (lambda: Provider("acme", "A", links=["https://x"]), "Provider.links[0]: expected Link, got str"),
    (lambda: Link("docs", "ftp://example.com"), "Link.url: expected an absolute https:// URL"),
    (lambda: Link("docs", "http://127.0.0.1/x"), "Link.url: expected https://"),
    (lambda: OAuth2AuthorizationCode("http://evil.example/a", "https://x/t"), "authorize_url: expected https://"),
    (lambda: OAuth2AuthorizationCode("https://x/a#frag", "https://x/t"), "without a #fragment"),
    (lambda: attrs.evolve(OAUTH, client_auth_method="private_key_jwt"), "client_auth_method: expected one of"),
    (lambda: attrs.evolve(OAUTH, scope_separator=";"), "scope_separator: expected ' ', ',' or '+'"),
    (lambda: attrs.evolve(OAUTH, pkce="yes"), "pkce: expected true or false"),
    (lambda: attrs.evolve(OAUTH, extra_authorize_params={"state": "x"}), "'state' is set by the OAuth engine"),
    (lambda: attrs.evolve(OAUTH, extra_authorize_params={"prompt": 1}), "expected a mapping of strings"),
    (lambda: HttpBasicAuth("basic", "Basic", "User", "pw"), "HttpBasicAuth.username_field"),
    (lambda: ApiKeyAuth("key", "Key", "api_key", header_name="X Bad"), "ApiKeyAuth.header_name"),
    (lambda: CredentialField("ClientId", "C", "oauth2"), "CredentialField.name: expected a snake_case"),
    (lambda: CredentialField("x", "X", "oauth2", pattern="(["), "CredentialField.pattern: invalid regular"),
    (lambda: CredentialField("x", "X", "oauth2", kind="password"), "CredentialField.kind: expected one of"),
    (lambda: CredentialField("x", "X", "oauth2", level="org"), "CredentialField.level: expected one of app, user"),
    (lambda: CredentialField("x", "X", "oauth2", max_length=0), "CredentialField.max_length"),
    (lambda: Scope("a b", "d", "read"), "Scope.name: expected a scope token"),
    (lambda: Scope('a"b', "d", "read"), "Scope.name"),
    (lambda: Scope("a", "d", "admin"), "Scope.access: expected one of read, write, got 'admin'"),
    (lambda: Scope("a", "d", "read", sensitive=1), "Scope.sensitive"),
    (lambda: ScopeGroup("g", "G", []), "ScopeGroup.scopes: expected at least one entry"),
    (lambda: catalogue(default_scopes=["a:read", "zzz"]), "default_scopes: not in the catalogue: zzz"),
    (lambda: catalogue(minimum_scopes=["a:write"], default_scopes=["a:read"]), "must be a subset of default"),
    (lambda: catalogue(minimum_scopes=[]), "minimum_scopes: expected at least one scope"),
    (
        lambda: catalogue(
            groups=[
                ScopeGroup("g", "G", [Scope("a:read", "A", "read")]),
                ScopeGroup("h", "H", [Scope("a:read", "A", "read")]),
            ],
            default_scopes=["a:read"],
        ),
        "scope 'a:read' appears in both 'g' and 'h'",
    ),
    (
        lambda: catalogue(
            groups=[
                ScopeGroup("g", "G", [Scope("a:read", "A", "read")]),
                ScopeGroup("g", "H", [Scope("b:read", "B", "read")]),
            ],
            default_scopes=["a:read"],
        ),
        "duplicate group key 'g'",
    ),
    (lambda: Environment("Prod", "P", "production", "https://x"), "Environment.key"),
    (lambda: Environment("prod", "P", "production", "not a url"), "Environment.api_base_url"),
    (lambda: Environment("prod", "P", "production", "https://x", default="yes"), "Environment.default"),
    (lambda: Callback("connect/cb"), "Callback.path: expected an absolute path"),
    (lambda: Callback("/connect/../cb"), "expected no '.' or '..' segments"),
    (lambda: Callback("/cb?x=1"), "Callback.path"),
    (lambda: ManualStep(""), "ManualStep.text: expected a non-empty string"),
    (lambda: Procedure("Do it", []), "Procedure.steps: expected at least one entry"),
    (lambda: Procedure("Do it", [ManualStep("a")], auth_types=["OAuth2"]), "Procedure.auth_types: expected"),
    (lambda: Procedure("Do it", [ManualStep("a")], auth_types="oauth2"), "Procedure.auth_types: expected a list"),
    (lambda: ReconnectPolicy("uninstall_then_reauthorize", "x"), "needs at least one procedure"),
    (lambda: ReconnectPolicy("delete_everything", "x"), "ReconnectPolicy.kind: expected one of"),
    (lambda: ConnectionTest("FETCH", "/x", "a:read"), "ConnectionTest.method: expected one of"),
    (lambda: ConnectionTest("GET", "x", "a:read"), "ConnectionTest.path: expected a path starting with '/'"),
    (lambda: ConnectionTest("GET", "/x", "a:read", json_body="{"), "ConnectionTest.json_body: expected JSON"),
    (lambda: ConnectionTest("GET", "/x", "a:read", expected_status=404), "expected a 2xx status"),
    (lambda: Action("List", "L", ["a:read"]), "Action.key"),
    (lambda: Action("list", "L", []), "Action.scopes: expected at least one scope"),
    (lambda: Action("list", "L", ["a:read"], method="FETCH"), "Action.method"),
    (lambda: SetupGuide("G", [SetupStep("a", "A"), SetupStep("a", "B")]), "duplicate step key 'a'"),
    (lambda: SetupStep("a", "A", url="javascript:alert(1)"), "SetupStep.url"),
]


@pytest.mark.parametrize(("build", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_declarations_name_the_field(build: Callable[[], object], message: str) -> None:
    with pytest.raises(DeclarationError) as info:
        build()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_catalogue_lookups_and_order() -> None:
    cat = catalogue(default_scopes=["a:write", "a:read"])
    assert cat.names == ("a:read", "a:write")
    assert cat.default_scopes == ("a:read", "a:write")
    assert "a:read" in cat
    assert "nope" not in cat
    scope = cat.get("a:write")
    assert scope is not None
    assert scope.access is Access.WRITE
    group = cat.group_of("a:read")
    assert group is not None
    assert group.key == "core"
    assert cat.group("core") is group
    assert cat.group("x") is None


def test_declaration_cross_checks() -> None:
    decl = declaration()
    assert decl.key == "acme"
    assert decl.environment().key == "prod"
    with pytest.raises(DeclarationError, match="names auth type 'basic'; expected one of oauth2"):
        declaration(credential_fields=[CredentialField("u", "U", "basic")])
    with pytest.raises(DeclarationError, match="refers to undeclared credential fields: user, pw"):
        declaration(
            auth_types=[HttpBasicAuth("basic", "Basic", "user", "pw")],
            credential_fields=[],
            scope_catalogue=None,
            callback=None,
        )
    with pytest.raises(DeclarationError, match="must declare its callback path"):
        declaration(callback=None)
    with pytest.raises(DeclarationError, match="must declare its scopes"):
        declaration(scope_catalogue=None)
    with pytest.raises(DeclarationError, match="names scopes not in the catalogue: b:read"):
        declaration(actions=[Action("list", "List", ["b:read"])])
    with pytest.raises(DeclarationError, match="duplicate action key 'list'"):
        declaration(actions=[Action("list", "List", ["a:read"]), Action("list", "L2", ["a:read"])])
    with pytest.raises(DeclarationError, match="is not among the minimum scopes"):
        declaration(connection_test=ConnectionTest("GET", "/me", "a:write"))
    with pytest.raises(DeclarationError, match="is not in the catalogue"):
        declaration(connection_test=ConnectionTest("GET", "/me", "zzz"))
    with pytest.raises(DeclarationError, match="at most one environment may be the default"):
        declaration(
            environments=[
                Environment("a", "A", "x", "https://a", default=True),
                Environment("b", "B", "x", "https://b", default=True),
            ]
        )
    with pytest.raises(DeclarationError, match="duplicate environment key 'a'"):
        declaration(environments=[Environment("a", "A", "x", "https://a"), Environment("a", "B", "x", "https://b")])
    with pytest.raises(DeclarationError, match="names unknown environments: staging"):
        declaration(
            reconnect_policy=ReconnectPolicy(
                ReconnectKind.REVOKE_THEN_REAUTHORIZE,
                "s",
                [Procedure("p", [ManualStep("do")], environments=["staging"])],
            )
        )
    with pytest.raises(DeclarationError, match="expected at least one entry"):
        declaration(auth_types=[])
    with pytest.raises(DeclarationError, match="duplicate auth type key 'oauth2'"):
        declaration(auth_types=[OAUTH, OAUTH])
    with pytest.raises(DeclarationError, match="declared twice"):
        declaration(credential_fields=[CredentialField("c", "C", "oauth2"), CredentialField("c", "C", "oauth2")])


def test_declaration_lookups_raise_with_suggestions() -> None:
    decl = declaration(actions=[Action("list_things", "List", ["a:read"])])
    assert decl.action("list_things").scopes == ("a:read",)
    with pytest.raises(UnknownNameError, match="unknown action 'list_thing' for provider 'acme'; did you mean"):
        decl.action("list_thing")
    with pytest.raises(UnknownNameError, match="unknown environment 'dev'"):
        decl.environment("dev")
    with pytest.raises(UnknownNameError, match="unknown auth type 'basic'"):
        decl.auth_type("basic")
    assert decl.auth_type() is OAUTH


def test_credential_field_check() -> None:
    field = CredentialField("client_id", "Client ID", "oauth2", pattern=r"[a-z0-9]+", max_length=10)
    assert field.check("  abc123 ") == "abc123"
    with pytest.raises(ValidationError, match="client_id: Client ID is required"):
        field.check("   ")
    with pytest.raises(ValidationError, match=r"client_id: 'ABC' does not match the expected pattern"):
        field.check("ABC")
    with pytest.raises(ValidationError, match="at most 10 characters"):
        field.check("a" * 11)
    with pytest.raises(ValidationError, match="control character"):
        field.check("ab\x07c")
    secret = CredentialField("client_secret", "Secret", "oauth2", kind="secret", pattern=r"[a-z]+")
    with pytest.raises(ValidationError) as info:
        secret.check("S3CRET-VALUE")
    assert "S3CRET-VALUE" not in str(info.value)
    url = CredentialField("base", "Base", "oauth2", kind="url")
    with pytest.raises(ValidationError, match="expected https://"):
        url.check("http://example.com")
    assert url.check("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_callback_url_joins_base_and_path() -> None:
    cb = Callback("/connect/oauth2/acme/callback")
    assert cb.url("https://platform.example.com/") == "https://platform.example.com/connect/oauth2/acme/callback"
    assert cb.url("https://p.example.com/base") == "https://p.example.com/base/connect/oauth2/acme/callback"
    with pytest.raises(ValidationError, match="callback base URL: expected https://"):
        cb.url("http://platform.example.com")
    with pytest.raises(ValidationError, match="expected no query string"):
        cb.url("https://platform.example.com/?x=1")


def test_procedures_filter_by_environment() -> None:
    policy = ReconnectPolicy(
        "uninstall_then_reauthorize",
        "s",
        [Procedure("all", [ManualStep("a")]), Procedure("sandbox only", [ManualStep("b")], environments=["sandbox"])],
    )
    assert [p.title for p in policy.procedures_for("sandbox")] == ["all", "sandbox only"]
    assert [p.title for p in policy.procedures_for("production")] == ["all"]


def test_procedures_filter_by_auth_type_too() -> None:
    oauth_only = Procedure("oauth", [ManualStep("a")], auth_types=["oauth2"])
    everyone = Procedure("all", [ManualStep("b")])
    assert oauth_only.applies_to("prod")  # without an auth type, as before
    assert oauth_only.applies_to("prod", "oauth2")
    assert not oauth_only.applies_to("prod", "basic")
    assert everyone.applies_to("prod", "basic")
    policy = ReconnectPolicy("uninstall_then_reauthorize", "s", [oauth_only, everyone])
    assert [p.title for p in policy.procedures_for("prod")] == ["oauth", "all"]
    assert [p.title for p in policy.procedures_for("prod", "basic")] == ["all"]
    assert policy.lines_for("prod", "basic") == ("all", "  1. b")


BASIC = HttpBasicAuth("basic", "Basic", "user", "pw")
BASIC_FIELDS = [CredentialField("user", "User", "basic"), CredentialField("pw", "Password", "basic", kind="secret")]
TWO_ENVS = [
    Environment("prod", "Production", "production", "https://api.example.com", default=True),
    Environment("sandbox", "Sandbox", "sandbox", "https://sandbox.example.com"),
]


def test_the_connect_checklist_is_chosen_by_environment_and_auth_type() -> None:
    install = Procedure("Install the app", [ManualStep("Install it.")], auth_types=["oauth2"])
    user = Procedure("Create a user", [ManualStep("Create it.")], auth_types=["basic"])
    sandbox = Procedure("Use a sandbox company", [ManualStep("Pick it.")], environments=["sandbox"])
    decl = declaration(
        auth_types=[OAUTH, BASIC],
        credential_fields=[CredentialField("client_id", "Client ID", "oauth2"), *BASIC_FIELDS],
        environments=TWO_ENVS,
        connect_checklist=[install, user, sandbox],
    )
    assert decl.connect_checklist == (install, user, sandbox)
    assert decl.checklist_for("prod", "oauth2") == (install,)
    assert decl.checklist_for("prod", "basic") == (user,)
    assert decl.checklist_for("sandbox", "oauth2") == (install, sandbox)
    assert declaration().connect_checklist == ()
    assert declaration().checklist_for("prod", "oauth2") == ()
    with pytest.raises(UnknownNameError, match="unknown auth type 'oauth' for provider 'acme'; did you mean 'oauth2'"):
        decl.checklist_for("prod", "oauth")
    with pytest.raises(UnknownNameError, match="unknown environment 'staging'"):
        decl.checklist_for("staging", "oauth2")


@pytest.mark.parametrize(
    ("procedure", "message"),
    [
        (
            Procedure("Install", [ManualStep("a")], auth_types=["basic"]),
            "connect_checklist[1].auth_types: procedure 'Install' names unknown auth types: basic; "
            "expected one of oauth2",
        ),
        (
            Procedure("Install", [ManualStep("a")], environments=["staging"]),
            "connect_checklist[1].environments: procedure 'Install' names unknown environments: staging; "
            "expected one of prod",
        ),
    ],
)
def test_the_connect_checklist_names_only_declared_keys(procedure: Procedure, message: str) -> None:
    fine = Procedure("Fine", [ManualStep("a")], auth_types=["oauth2"], environments=["prod"])
    with pytest.raises(DeclarationError) as info:
        declaration(connect_checklist=[fine, procedure])
    assert str(info.value) == message


def test_the_connect_checklist_holds_procedures_only() -> None:
    with pytest.raises(DeclarationError, match=r"ProviderDeclaration\.connect_checklist"):
        declaration(connect_checklist=[ManualStep("not a procedure")])


def test_reconnect_procedures_name_only_declared_auth_types() -> None:
    policy = ReconnectPolicy(
        "uninstall_then_reauthorize", "s", [Procedure("Uninstall", [ManualStep("a")], auth_types=["basic"])]
    )
    with pytest.raises(
        DeclarationError, match=r"reconnect_policy.procedures\[0\].auth_types: .* unknown auth types: basic"
    ):
        declaration(reconnect_policy=policy)


def test_every_public_model_name_resolves_and_unknown_names_fail() -> None:
    import connector_core
    import connector_core.models as models

    for name in models.__all__:
        assert getattr(models, name) is not None, name
        assert name in dir(models)
    # The same class whichever way it is imported.
    assert connector_core.ScopeCatalogue is models.ScopeCatalogue
    assert connector_core.ProviderDeclaration is models.ProviderDeclaration
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = models.Nope  # type: ignore[attr-defined]
