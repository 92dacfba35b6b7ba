"""The end user's credential options of ``connect`` and ``reconnect`` (a service user's ID and
token, an API key): built, like a profile's options, from the provider's credential fields.

Which options exist depends on the profile's provider, known only once the profile is read,
so both commands parse in two steps: their own parser takes ``PROFILE`` (or ``CONNECTION``)
and keeps the rest of the line, which :func:`parse_rest` parses again with the command's
options plus the provider's user-level fields, grouped by auth type (``PROFILE --help`` lists
them). Secret fields are read with :mod:`connector_core.cli.secrets`, never from argv.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..errors import UsageError, ValidationError
from .output import Parser
from .secrets import add_field_option, option_name, read_secret

if TYPE_CHECKING:
    from ..models import AuthType, CredentialField, ProviderDeclaration
    from ..secret import Secret

__all__ = [
    "add_credential_options",
    "add_rest",
    "credential_options",
    "parse_quietly",
    "parse_rest",
    "read_credentials",
    "refuse_other_auth_types",
    "what_it_takes",
]

#: Where a field's options keep their values in the parsed namespace (apart from the command's own).
_DEST = "credential__{}"


def add_rest(parser: argparse.ArgumentParser) -> None:
    """The first step's catch-all: everything after ``PROFILE``/``CONNECTION``."""
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def parse_rest(
    args: argparse.Namespace,
    prog: str,
    configure: Callable[[argparse.ArgumentParser], None],
    decl: ProviderDeclaration | None,
    *,
    takes: str | None = None,
) -> argparse.Namespace:
    """Parse the rest of the line again, with the command's own options (``configure``) and the
    credential options of ``decl``'s auth types; values given before ``PROFILE`` are kept. An
    unknown option is a usage error naming it (never its value) and, from ``takes``, what the
    profile's auth type takes instead."""
    parser = Parser(prog=prog, description=None if decl is None else _description(decl))
    configure(parser)
    if decl is not None:
        add_credential_options(parser, decl)
    namespace = argparse.Namespace(**{**vars(args), "rest": []})
    return parse_quietly(parser, args.rest, namespace, takes=takes)


def parse_quietly(
    parser: argparse.ArgumentParser,
    words: list[str],
    namespace: argparse.Namespace | None = None,
    *,
    takes: str | None = None,
) -> argparse.Namespace:
    """``parser.parse_args(words)``, but an unknown option is named without its value: a
    misspelt secret option (``--service-user-tokn TOKEN``) must not have its token printed back."""
    parsed, unknown = parser.parse_known_args(words, namespace=namespace)
    if unknown:
        names = [word.split("=", 1)[0] for word in unknown if word.startswith("-")]
        shown = " ".join(names) if names else f"{len(unknown)} unexpected word(s)"
        tail = f"; {takes}" if takes else ""
        prog = parser.prog
        raise UsageError(
            f"{prog}: unrecognized arguments: {shown} (their values are not shown){tail} (see '{prog} --help')"
        )
    return parsed


def _description(decl: ProviderDeclaration) -> str:
    return (
        f"{decl.provider.display_name}: a profile whose auth type takes an end user's credentials connects with "
        "the options of that auth type; a secret one from -env VAR, -file PATH or a prompt, never the command line."
    )


def add_credential_options(parser: argparse.ArgumentParser, decl: ProviderDeclaration) -> None:
    """One group per auth type with end-user (``user``-level) fields: a non-secret field is
    ``--NAME VALUE``, a secret one ``--NAME-env VAR`` or ``--NAME-file PATH`` (``--NAME VALUE`` is
    refused without echoing VALUE)."""
    from ..models import FieldLevel  # here: the commands' parsers are built without the auth records (cold start)

    seen: set[str] = set()
    for auth in decl.auth_types:
        fields = [f for f in decl.fields_for(auth.key, FieldLevel.USER) if f.name not in seen]
        if not fields:
            continue
        group = parser.add_argument_group(
            f"{auth.key} credentials ({auth.label})",
            f"For profiles whose auth type is {auth.key}: what the end user gives; kept, encrypted, with the "
            "connection.",
        )
        for field in fields:
            seen.add(field.name)
            opt = option_name(field)
            if opt in parser._option_string_actions:  # argparse offers no public way to ask
                raise ValidationError(
                    f"credential_fields.{field.name}", f"its option {opt} clashes with one of the command's own"
                )
            add_field_option(group, field, _DEST.format(field.name), prompted=True)


def credential_options(decl: ProviderDeclaration, auth: AuthType) -> str:
    """The options an auth type's connections take, for an error message."""
    from ..models import FieldLevel  # here: see add_credential_options

    names = []
    for field in decl.fields_for(auth.key, FieldLevel.USER):
        opt = option_name(field)
        names.append(f"{opt}-env VAR or {opt}-file PATH" if field.secret else f"{opt} VALUE")
    return ", ".join(names) if names else "no credential options"


def _given(args: argparse.Namespace, field: CredentialField) -> bool:
    dest = _DEST.format(field.name)
    return any(getattr(args, d, None) is not None for d in (dest, f"{dest}__env", f"{dest}__file"))


def refuse_other_auth_types(args: argparse.Namespace, decl: ProviderDeclaration, auth: AuthType, whose: str) -> None:
    """A credential option of another auth type than ``auth`` (``--service-user-id`` for an OAuth
    profile) is an error naming the options ``auth`` takes, never silently ignored."""
    from ..models import FieldLevel  # here: see add_credential_options

    own = {f.name for f in decl.fields_for(auth.key, FieldLevel.USER)}
    for field in decl.credential_fields:
        if field.level is not FieldLevel.USER or field.name in own or not _given(args, field):
            continue
        raise ValidationError(
            option_name(field),
            f"is a credential of {decl.key} {field.auth_type} connections, but {what_it_takes(decl, auth, whose)}",
        )


def read_credentials(
    args: argparse.Namespace,
    decl: ProviderDeclaration,
    auth: AuthType,
    whose: str,
    *,
    defaults: Mapping[str, str] | None = None,
) -> dict[str, str | Secret]:
    """The end user's credential values for a connection of ``auth``: a non-secret field from its
    option, a secret one from its ``-env``/``-file`` option or, on a terminal, a prompt without
    echo. A required field that is missing is an error naming its option (before any prompt for a
    secret, so nobody types a token only to be told the ID is missing). ``defaults``: non-secret
    values to use when their option is not given (a reconnect keeps the service user's ID)."""
    from ..models import FieldLevel  # here: see add_credential_options

    refuse_other_auth_types(args, decl, auth, whose)
    fields = decl.fields_for(auth.key, FieldLevel.USER)
    values: dict[str, str | Secret] = {}
    for field in fields:
        if field.secret:
            continue
        value = getattr(args, _DEST.format(field.name), None)
        if value is None and defaults is not None:
            value = defaults.get(field.name)
        if value is None and field.required:
            raise ValidationError(option_name(field), f"{field.label} is required; pass {option_name(field)} VALUE")
        if value is not None:
            values[field.name] = value
    for field in fields:
        if not field.secret:
            continue
        dest = _DEST.format(field.name)
        secret = read_secret(
            field, getattr(args, f"{dest}__env", None), getattr(args, f"{dest}__file", None), prompt=True
        )
        if secret is not None:
            values[field.name] = secret
    return values


def what_it_takes(decl: ProviderDeclaration, auth: AuthType, whose: str) -> str:
    """``profile 'su' uses service_user (...), which takes --service-user-id VALUE, ...``."""
    return f"{whose} uses {auth.key} ({auth.label}), which takes {credential_options(decl, auth)}"
