"""Everything the HiBob provider declares, except its scopes (see ``catalogue``).

Values HiBob has not confirmed publicly (PKCE support, a revocation endpoint, a
separate sandbox authorization host) are read from environment variables so a
platform can change them without a new release; the defaults and the reasons
for them are documented next to each.
"""

from __future__ import annotations

import json
import os

from connector_core import (
    Action,
    Callback,
    ConnectionTest,
    CredentialField,
    Environment,
    HttpBasicAuth,
    ManualStep,
    OAuth2AuthorizationCode,
    Procedure,
    ReconnectPolicy,
    SetupGuide,
    SetupStep,
)

from .provider import (
    API_PRODUCTION,
    API_SANDBOX,
    AUTHORIZE_URL,
    BOB_WEB,
    DEVELOPER_PORTAL,
    TOKEN_URL,
)

#: Unconfirmed: whether HiBob's authorization server checks PKCE. Servers that do
#: not know PKCE ignore its parameters, and RFC 9700 recommends it for
#: confidential clients, so it is on unless ``HIBOB_OAUTH_PKCE=0``.
ENV_PKCE = "HIBOB_OAUTH_PKCE"
#: Unconfirmed: a revocation endpoint (RFC 7009). None is known, so none is used
#: unless ``HIBOB_OAUTH_REVOCATION_URL`` names one.
ENV_REVOCATION_URL = "HIBOB_OAUTH_REVOCATION_URL"
#: Unconfirmed: a separate sandbox authorization host. The production host is
#: used for both unless ``HIBOB_SANDBOX_AUTH_HOST`` names another.
ENV_SANDBOX_AUTH_HOST = "HIBOB_SANDBOX_AUTH_HOST"

OAUTH2 = "oauth2"
SERVICE_USER = "service_user"


def auth_types() -> tuple[OAuth2AuthorizationCode | HttpBasicAuth, ...]:
    pkce = os.environ.get(ENV_PKCE, "1").strip().lower() not in ("0", "false", "no", "off")
    return (
        OAuth2AuthorizationCode(
            key=OAUTH2,
            label="OAuth 2.0 (approved technology partners)",
            description=(
                "Authorization code grant. The customer installs the app, consents to every requested "
                "scope at once and picks the audience of employees the app may see."
            ),
            authorize_url=AUTHORIZE_URL,
            token_url=TOKEN_URL,
            revocation_url=os.environ.get(ENV_REVOCATION_URL) or None,
            client_auth_method="client_secret_basic",
            scope_separator=" ",
            pkce=pkce,
            # Marketplace apps must support installs begun in Bob, which carry no state of ours.
            provider_initiated_install=True,
            # Unknown: HiBob's partner documentation does not say whether (or after how long) a refresh
            # token left unused dies. Unconfirmed, so not declared; an operator who learns it sets
            # `connector keeper --refresh-every HOURS`.
            refresh_idle_limit=None,
        ),
        HttpBasicAuth(
            key=SERVICE_USER,
            label="Service user (HTTP Basic)",
            description=(
                "A service user's ID and token, for companies connecting without a partner app. A new "
                "service user has no permissions until an admin adds it to a permission group."
            ),
            username_field="service_user_id",
            password_field="service_user_token",  # noqa: S106 - a field name, not a password
            rejected_guidance=(
                "Reset the service user's token in Bob (Settings → Integrations → Service users) and connect "
                "again with the new one, or check that the service user is in a permission group that may "
                "read this data."
            ),
        ),
    )


_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}"
_SECRET_PATTERN = r"[\x21-\x7e]{8,512}"  # noqa: S105 - a pattern, not a secret

CREDENTIAL_FIELDS = (
    CredentialField(
        name="app_id",
        label="App ID",
        auth_type=OAUTH2,
        help="The App ID on the OAuth page of your app in the HiBob Developer Portal.",
        pattern=_ID_PATTERN,
    ),
    CredentialField(
        name="client_id",
        label="Client ID",
        auth_type=OAUTH2,
        help=("The Client ID on the OAuth page: the Development one for Sandbox, the Production one for Production."),
        pattern=_ID_PATTERN,
    ),
    CredentialField(
        name="client_secret",
        label="Client Secret",
        auth_type=OAUTH2,
        kind="secret",
        help=(
            "The Client Secret on the OAuth page, of the same credential set as the Client ID. Never "
            "pass it on the command line."
        ),
        pattern=_SECRET_PATTERN,
    ),
    CredentialField(
        name="scopes",
        label="OAuth Scopes",
        auth_type=OAUTH2,
        kind="scope_list",
        required=False,
        help=(
            "Space-separated scopes; every one must also be configured on the app's Scopes page. "
            "Defaults to the 11 core scopes when empty."
        ),
    ),
    CredentialField(
        name="service_user_id",
        label="Service user ID",
        auth_type=SERVICE_USER,
        level="user",
        help="The service user's ID from Bob (Settings → Integrations → Service users); usually SERVICE-….",
        pattern=_ID_PATTERN,
        placeholder="SERVICE-12345",
    ),
    CredentialField(
        name="service_user_token",
        label="Service user token",
        auth_type=SERVICE_USER,
        kind="secret",
        level="user",
        help="The token shown once when the service user is created (it can be reset in Bob).",
        pattern=_SECRET_PATTERN,
    ),
)


def environments() -> tuple[Environment, ...]:
    sandbox_host = os.environ.get(ENV_SANDBOX_AUTH_HOST, "").rstrip("/") or None
    return (
        Environment(
            key="sandbox",
            label="Sandbox",
            credential_set="development",
            credential_set_label="Development credentials",
            description=(
                "For apps not yet submitted for review or still unpublished in the HiBob "
                "Marketplace; installs with the app installation URL plus &mode=dev."
            ),
            api_base_url=API_SANDBOX,
            authorize_url=f"{sandbox_host}/oauth2/v1/apps/authorize" if sandbox_host else None,
            token_url=f"{sandbox_host}/oauth2/v1/apps/token" if sandbox_host else None,
            web_url=BOB_WEB,
            default=True,
        ),
        Environment(
            key="production",
            label="Production",
            credential_set="production",
            credential_set_label="Production credentials",
            description="For apps approved and published in the HiBob Marketplace.",
            api_base_url=API_PRODUCTION,
            web_url=BOB_WEB,
        ),
    )


#: The reference document's callback URL is this base plus the path.
CALLBACK = Callback(path="/connect/oauth2/hibob/callback", default_base_url="https://api.stackone.com")

RECONNECT_POLICY = ReconnectPolicy(
    kind="uninstall_then_reauthorize",
    summary=(
        "HiBob cannot re-install an already-installed app through OAuth: uninstall the app in Bob "
        "first, then connect again. The companyId stays the same across re-installs."
    ),
    procedures=(
        Procedure(
            title="Uninstall the app from the Bob Marketplace",
            url=BOB_WEB,
            steps=(
                ManualStep("Log in to your HiBob account.", location=BOB_WEB),
                ManualStep("Open Marketplace from the waffle menu.", location="top-left corner"),
                ManualStep(
                    "Find the installed app with Search or the category tabs.", location="Search field, top right"
                ),
                ManualStep("Open the app by clicking it."),
                ManualStep("Click Uninstall.", location="left side of the app's detail view"),
            ),
        ),
        Procedure(
            title="Or, for a sandbox (Development) install, uninstall it in the Developer Portal",
            environments=("sandbox",),
            url=DEVELOPER_PORTAL,
            steps=(
                ManualStep("Open the HiBob Developer Portal.", location=DEVELOPER_PORTAL),
                ManualStep("Open My Apps and click the app."),
                ManualStep("Open the OAuth page and go to Development Credentials."),
                ManualStep("Click Uninstall.", location="OAuth → Development Credentials"),
            ),
        ),
    ),
)

#: Where service users are managed in Bob (the credential fields' help and the rejected guidance say so too).
SERVICE_USERS_LOCATION = "Bob → Settings → Integrations → Service users"

#: What the customer's Bob admin does before pressing Connect, one procedure per auth type. A
#: reconnect's uninstall steps are the reconnect policy's, shown in their place.
CONNECT_CHECKLIST = (
    Procedure(
        title="Install the app in Bob",
        auth_types=(OAUTH2,),
        steps=(
            ManualStep(
                "Be ready to sign in to Bob as an admin, or as another user allowed to install "
                "Marketplace apps for your company."
            ),
            ManualStep(
                "Once you continue to HiBob, Bob asks you to install the app and lists the permissions "
                "(scopes) it requests."
            ),
            ManualStep(
                "Choose the audience: the employees the app may see. Employees outside it are left "
                "out of what the app can read."
            ),
            ManualStep(
                "Approve all the requested permissions at once: Bob has no partial grant, so the app "
                "is installed with every permission it asks for, or not at all."
            ),
        ),
    ),
    Procedure(
        title="Create a service user in Bob",
        auth_types=(SERVICE_USER,),
        url=BOB_WEB,
        steps=(
            ManualStep("Sign in to Bob as an admin."),
            ManualStep("Create a service user for this connection.", location=SERVICE_USERS_LOCATION),
            ManualStep(
                "Copy the service user's ID (it usually starts with SERVICE-) and its token. Bob shows "
                "the token only once; if it is lost, reset it in Bob and use the new one."
            ),
            ManualStep(
                "Add the service user to a permission group that allows the data this connection needs: "
                "a new service user has no permissions until it is in one."
            ),
            ManualStep("Enter the ID and the token below, then press Connect."),
        ),
    ),
)

CONNECTION_TEST = ConnectionTest(
    method="POST",
    path="/people/search",
    scope="employee_data:read",
    description="Searches for one field of every employee; needs only employee_data:read.",
    json_body=json.dumps({"fields": ["root.id"], "showInactive": False}),
)

ACTIONS = (
    Action(
        "list_employees",
        "List employees",
        ("employee_data:read",),
        method="POST",
        path="/people/search",
        description="Search employees and read their profile fields.",
    ),
    Action(
        "update_employee", "Update an employee", ("employee_data:write",), method="PUT", path="/people/{identifier}"
    ),
    Action(
        "list_employment_history",
        "List employment history",
        ("employee_data.history:read",),
        description="Bulk employment, lifecycle and work history.",
    ),
    Action(
        "list_compensation",
        "List salaries and variable pay",
        ("employee_data.sensitive:read",),
        description="Sensitive: payroll and compensation data.",
    ),
    Action(
        "list_named_lists", "List named lists", ("company.metadata:read",), method="GET", path="/company/named-lists"
    ),
    Action(
        "list_time_off_requests",
        "List time-off requests",
        ("timeoff:read",),
        method="GET",
        path="/timeoff/requests/changes",
        description="Time-off requests changed since a date.",
    ),
    Action(
        "create_time_off_request",
        "Create a time-off request",
        ("timeoff:write",),
        method="POST",
        path="/timeoff/employees/{id}/requests",
    ),
    Action(
        "list_tasks",
        "List tasks",
        ("tasks:write",),
        method="GET",
        path="/tasks",
        description="HiBob requires tasks:write even to list tasks.",
    ),
    Action("complete_task", "Complete a task", ("tasks:write",), method="POST", path="/tasks/{taskId}/complete"),
    Action(
        "list_documents", "List an employee's documents", ("documents:read",), method="GET", path="/docs/people/{id}"
    ),
    Action(
        "upload_document",
        "Upload a document",
        ("documents:write",),
        method="POST",
        path="/docs/people/{id}/shared/upload",
    ),
    Action("list_reports", "List company reports", ("reports:read",), method="GET", path="/company/reports"),
    Action(
        "list_job_ads",
        "List job ads",
        ("hiring:write",),
        method="POST",
        path="/hiring/job-ads/search",
        description="Hiring module; HiBob requires hiring:write even to read job ads.",
    ),
    Action("list_goals", "List goals", ("goals:read",), description="Talent module."),
    Action("list_job_profiles", "List job profiles", ("job_catalog:read",), description="New Job Catalogue only."),
    Action("import_attendance", "Import attendance punches", ("attendance:write",), description="Attendance module."),
)

SETUP_GUIDE = SetupGuide(
    title="Register a HiBob OAuth app and create a connector profile",
    steps=(
        SetupStep(
            key="apply_partnership",
            title="Apply to the HiBob Partner Programme as a Tech Partner",
            details=(
                "OAuth 2.0 in HiBob is restricted to approved technology partners.",
                "Contact your HiBob account manager, or apply through the HiBob Partner Programme page or the "
                "HiBob Marketplace.",
                "On the HiBob Partners page click BECOME A PARTNER, choose Tech Partner, fill out the Tech "
                "Partner Application Form and click Submit Application.",
            ),
        ),
        SetupStep(
            key="await_portal_access",
            title="Await Developer Portal access",
            details=(
                "Once approved, HiBob provisions Developer Portal access in your HiBob account.",
                "Approval may take a few business days; nothing below can be done before it.",
                "Meanwhile, build against the built-in emulator.",
            ),
        ),
        SetupStep(
            key="create_app",
            title="Create the app in the Developer Portal",
            url=DEVELOPER_PORTAL,
            details=(
                "Click + Create app, enter the App Name and App description, then click Create.",
                "Open the app; in Basic Information upload your logo, review the fields and click Save.",
            ),
        ),
        SetupStep(
            key="copy_credentials",
            title="Copy the OAuth credentials",
            details=(
                "On the OAuth page copy the App ID, and the Client ID and Client Secret of both the "
                "Development and the Production credentials.",
                "Keep the secrets out of shell history: pass them to connector through an environment "
                "variable or a file.",
            ),
        ),
        SetupStep(
            key="redirect_uri",
            title="Add the redirect URI",
            details=(
                "In the Redirect URI section of the OAuth page add your callback URL (shown below), then click Save.",
                "An app has one redirect URI, and it must work even when the user is not logged in to your product.",
            ),
        ),
        SetupStep(
            key="configure_scopes",
            title="Configure the app's scopes",
            details=(
                "On the Scopes page click + Manage scopes, select the scopes, click Apply, then Save.",
                "Every scope a connector profile requests must be configured here, or connecting fails.",
                "Changing the scopes later may force customers to re-install the app.",
            ),
        ),
        SetupStep(
            key="marketplace_listing",
            title="Publish in the HiBob Marketplace",
            optional=True,
            details=(
                "Only to publish: fill out App listing details and Submission information and submit the "
                "app for review.",
                "Until it is published, test with the Development credentials.",
            ),
        ),
        SetupStep(
            key="create_profile",
            title="Create the connector profile",
            details=(
                "Choose Sandbox while the app is unpublished (Development credentials) and Production once "
                "it is approved and published (Production credentials).",
                "Fill out App ID, Client ID, Client Secret and, optionally, OAuth Scopes and Actions.",
            ),
        ),
    ),
)
