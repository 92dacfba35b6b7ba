"""The HiBob provider itself and its public hosts: all that ``connector providers list``
needs. Kept apart from ``declarations`` so that listing providers builds none of the
other records."""

from __future__ import annotations

from connector_core import Link, Provider

KEY = "hibob"

AUTH_HOST = "https://auth.app.hibob.com"
AUTHORIZE_URL = f"{AUTH_HOST}/oauth2/v1/apps/authorize"
TOKEN_URL = f"{AUTH_HOST}/oauth2/v1/apps/token"
API_PRODUCTION = "https://api.hibob.com/v1"
API_SANDBOX = "https://api.sandbox.hibob.com/v1"
BOB_WEB = "https://app.hibob.com"
DEVELOPER_PORTAL = "https://developers.hibob.com"
API_DOCS = "https://apidocs.hibob.com"

PROVIDER = Provider(
    key=KEY,
    display_name="HiBob",
    description="HiBob (Bob), the HR platform: employees, time off, documents, tasks and more.",
    links=(
        Link("API reference", API_DOCS),
        Link("Developer Portal", DEVELOPER_PORTAL),
        Link("Bob web app", BOB_WEB),
    ),
    categories=("hris",),
)
