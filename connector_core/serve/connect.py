"""The connect service's end-user side: connect sessions in the platform API, the hosted
connect page, and the provider's callback on the platform's own URL.

* ``POST /v1/connect/sessions`` (API key): the platform's backend asks for a session for one of
  its end users; it gets the token once, inside ``connect_url``. ``GET /v1/connect/sessions/{id}``
  says how it ended.
* ``GET /connect/{token}``: the connect page (server-rendered, no JavaScript needed): the
  providers to pick from, the provider's checklist, the uninstall-first steps of a reconnect, the
  credential form of an auth type that needs one. ``POST /connect/{token}`` starts connecting (or
  cancels). The session is claimed, single use, when connecting really starts: before the
  browser is sent to the provider, or once credentials passed the provider's connection test.
* ``GET /connect/oauth2/{provider}/callback``: the redirect URI to register at the provider.
  A callback with our ``state`` must come back to the browser that started it (a cookie named
  after the state's hash, set when it was sent away); PKCE and the RFC 9207 ``iss`` checks are the
  engine's. A code with no state of ours is an install begun at the provider (a marketplace): taken
  where the provider allows it, through the configured profile, as an **unclaimed** connection the
  platform attaches to its customer with ``PUT /v1/connections/{id}/owner``.

Forms are protected against cross-site requests twice: the ``Origin`` of a POST must be the
service's own, and a form's hidden token must match its cookie. Pages carry a strict CSP with a
per-answer nonce; the origins configured to embed the page are its only ``frame-ancestors`` and
the only receivers of its ``postMessage`` events. No page, log line or error holds a token, a
code, a state or a credential.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio.to_thread
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..connection import SessionStatus
from ..errors import (
    AccessDenied,
    AlreadyInstalled,
    ConfirmationRequired,
    ConnectorError,
    CredentialsRejected,
    OAuthError,
    SessionError,
    StateError,
    TransientError,
    UnknownNameError,
    ValidationError,
)
from ..models import FieldLevel, OAuth2AuthorizationCode, ReconnectKind
from ..secret import Secret
from ..sessions import ConnectSessions, SessionRequest
from .config import ConnectConfig, callback_url
from .problems import Problem, read_body, read_json
from .threads import in_store_thread

if TYPE_CHECKING:
    from ..connection import ConnectResult, ConnectSession
    from ..connector import Connector
    from ..profiles import Profile

__all__ = ["FORM_MAX_BODY", "ConnectService", "session_data"]

log = logging.getLogger("connector_core.serve")

#: The largest form body a connect page posts.
FORM_MAX_BODY = 64 * 1024
_SESSION_FIELDS = (
    *("end_user", "organisation", "tags", "providers", "profile", "scopes", "connection_id"),
    *("redirect_url", "expires_in", "separate"),
)
_TOKEN_PATH_RE = re.compile(r"cs_[A-Za-z0-9_-]{1,100}")
_SESSION_ID_RE = re.compile(r"sess_[0-9a-f]{32}")
_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
#: How often, at most, creating a session also deletes the sessions whose time ran out.
PURGE_EVERY = 600.0
#: How long the browser keeps the cookie binding it to an authorization it started.
FLOW_COOKIE_AGE = 15 * 60


def _state_key(state: str) -> str:
    return hashlib.sha256(b"connector-flow:" + state.encode("utf-8", "replace")).hexdigest()[:32]


class _Page(Exception):
    """An answer that is a page (rendered by :meth:`ConnectService._page_response`)."""

    def __init__(self, status: int, template: str, **context: Any) -> None:
        super().__init__(template)
        self.status = status
        self.template = template
        self.context = context


class ConnectService:
    """The connect sessions API, the connect page and the callback, over one connector."""

    def __init__(self, connector: Connector, config: ConnectConfig, public_url: str, max_body: int) -> None:
        self.connector = connector
        self.config = config
        self.public_url = public_url
        self.max_body = max_body
        self.sessions = ConnectSessions(
            connector.store, connector.plugins, redirect_allow_list=config.redirect_allow_list
        )
        self.secure = public_url.startswith("https://")
        self._purged_at = 0.0
        parts = urlsplit(public_url)
        self.origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("connector_core.serve", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/connect/sessions", self.create_session, methods=["POST"]),
            Route("/v1/connect/sessions/{id}", self.get_session, methods=["GET"]),
            Route("/connect/oauth2/{provider}/callback", self.callback, methods=["GET"]),
            Route("/connect/{token}", self.page, methods=["GET"]),
            Route("/connect/{token}", self.act, methods=["POST"]),
        ]

    # ------------------------------------------------------------ platform API

    async def create_session(self, request: Request) -> Response:
        data = await read_json(request, _SESSION_FIELDS, self.max_body)
        try:
            wanted = SessionRequest.from_mapping(data)
            session, token = await in_store_thread(self.sessions.create, wanted)
        except ValidationError as exc:
            raise Problem(400, "invalid", exc.message, field=exc.field) from None
        await self._purge()
        body = {
            "id": session.id,
            "token": token.reveal(),
            "connect_url": f"{self.public_url}/connect/{token.reveal()}",
            "expires_at": _iso(session.expires_at),
        }
        return JSONResponse(body, status_code=201, headers={"Location": f"/v1/connect/sessions/{session.id}"})

    async def _purge(self) -> None:
        """Delete the sessions whose time ran out, now and then: sessions are made here, so this is
        where they are cleared, on every replica, with no scheduler to run."""
        now = self.sessions.clock()
        if now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        try:
            purged = await anyio.to_thread.run_sync(self.sessions.purge)
        except ConnectorError as exc:
            log.warning("purging expired connect sessions failed: %s", exc.message)
            return
        if purged:
            log.info("purged %d expired connect session(s)", purged)

    async def get_session(self, request: Request) -> Response:
        sid = request.path_params["id"]
        if not _SESSION_ID_RE.fullmatch(sid):
            raise Problem(404, "not-found", "no connect session with such an id", field="id")
        try:
            session = await in_store_thread(self.sessions.get, sid)
        except UnknownNameError:
            raise Problem(404, "not-found", f"no connect session {sid!r}", field="id") from None
        return JSONResponse(session_data(session))

    # --------------------------------------------------------------- the page

    async def page(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            session = await self._lookup(token)
            chosen = request.query_params.get("provider")
            if chosen is None and len(session.providers) > 1:
                return await self._render(
                    request, 200, "pick.html", session=session, token=token, **self._picker(session)
                )
            view = await self._view(session, chosen or session.providers[0])
            return await self._render(request, 200, "connect.html", **view, token=token, errors={}, values={})
        except _Page as page:
            return await self._render(request, page.status, page.template, **page.context)

    async def act(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            form = await self._form(request)
            session = await self._lookup(token)
            if form.get("action") == "cancel":
                return await self._cancel(request, session)
            provider = form.get("provider") or (session.providers[0] if len(session.providers) == 1 else "")
            view = await self._view(session, provider)
            if view["auth"].kind.redirects:
                return await self._start_authorization(request, token, session, view, form)
            return await self._connect_with(request, token, session, view, form)
        except _Page as page:
            return await self._render(request, page.status, page.template, **page.context)

    async def _lookup(self, token: str) -> ConnectSession:
        if not _TOKEN_PATH_RE.fullmatch(token):
            raise _Page(404, "error.html", title="This link is not valid", message=_SESSION_WORDS["unknown"])
        try:
            return await anyio.to_thread.run_sync(self.sessions.lookup, Secret(token))
        except SessionError as exc:
            status = 404 if exc.code == "unknown" else 410
            raise _refused(exc, status) from None

    def _picker(self, session: ConnectSession) -> dict[str, Any]:
        choices = []
        for key in session.providers:
            try:
                provider = self.connector.plugins.provider(key)
            except ConnectorError:
                continue
            choices.append({"key": key, "name": provider.display_name})
        return {"choices": choices}

    async def _view(self, session: ConnectSession, provider: str) -> dict[str, Any]:
        """What the connect page shows for ``provider``: its profile, auth type, checklist,
        credential fields, and for a reconnect the provider's steps."""
        if provider not in session.providers:
            raise _Page(
                400, "error.html", title="Pick a provider", message="This connect link does not allow that provider."
            )
        try:
            return await anyio.to_thread.run_sync(self._view_sync, session, provider)
        except ConnectorError as exc:
            log.warning("connect page for %s cannot be shown: %s", session.id, exc.message)
            raise _Page(
                503,
                "error.html",
                title="This connection cannot be set up right now",
                message="The platform's setup for this provider is incomplete. Please tell the platform's support.",
            ) from None

    def _view_sync(self, session: ConnectSession, provider: str) -> dict[str, Any]:
        name = self.sessions.profile_for(session, provider)
        profile = self.connector.store.get_profile(name, with_secrets=False)
        decl = self.connector.plugins.declaration(provider)
        auth = decl.auth_type(profile.auth_type)
        reconnect: dict[str, Any] | None = None
        if session.connection_id is not None and not auth.kind.redirects:
            # New credentials replace the old: the provider's reconnect policy (uninstalling an
            # app) is about its OAuth grant, not these.
            guidance = getattr(auth, "rejected_guidance", "") or ""
            reconnect = {
                "kind": "credentials",
                "summary": guidance or "Enter new credentials: they replace the ones this connection holds.",
                "procedures": (),
                "confirm": False,
            }
        elif session.connection_id is not None:
            plan = self.connector.reconnect_plan(session.connection_id, scopes=None)
            reconnect = {
                "kind": plan.policy.kind.value,
                "summary": plan.policy.summary,
                "procedures": plan.procedures,
                "confirm": plan.policy.kind is ReconnectKind.UNINSTALL_THEN_REAUTHORIZE and auth.kind.redirects,
            }
        checklist = () if reconnect else decl.checklist_for(profile.environment, auth.key)
        fields = () if auth.kind.redirects else decl.fields_for(auth.key, FieldLevel.USER)
        form_targets: tuple[str, ...] = ()
        if isinstance(auth, OAuth2AuthorizationCode):
            form_targets = (_origin_of(self.connector.authorization_endpoint(name)),)
        return {
            "session": session,
            "provider": decl.provider,
            "decl": decl,
            "profile": profile,
            "auth": auth,
            "checklist": checklist,
            "fields": fields,
            "reconnect": reconnect,
            "several": len(session.providers) > 1,
            "form_targets": form_targets,
        }

    async def _form(self, request: Request) -> dict[str, str]:
        """The posted form, once its origin and its CSRF token are checked."""
        origin = request.headers.get("origin")
        if origin is not None and origin.lower() != self.origin:
            raise _Page(403, "error.html", title="Refused", message="This form was sent from another site.")
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise _Page(415, "error.html", title="Refused", message="This page only accepts its own form.")
        try:
            body = await read_body(request, FORM_MAX_BODY)
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        except Problem:
            raise _Page(413, "error.html", title="Refused", message="What was sent is too large.") from None
        except ValueError:
            raise _Page(400, "error.html", title="Refused", message="What was sent is not this page's form.") from None
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                raise _Page(400, "error.html", title="Refused", message=f"The form field {key[:40]!r} came twice.")
            form[key] = value
        expected = request.cookies.get(self._cookie("csrf"), "")
        given = form.get("csrf", "")
        if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
            raise _Page(
                403,
                "error.html",
                title="Please try again",
                message="This form expired or was not sent from this page. Go back, reload the page and try again.",
            )
        return form

    # ----------------------------------------------------------- connecting

    async def _cancel(self, request: Request, session: ConnectSession) -> Response:
        await anyio.to_thread.run_sync(self.sessions.fail, session.id, "cancelled", "the end user cancelled")
        return await self._finished(request, session, "closed", None, None)

    async def _start_authorization(
        self, request: Request, token: str, session: ConnectSession, view: dict[str, Any], form: Mapping[str, str]
    ) -> Response:
        reconnect = view["reconnect"]
        if reconnect and reconnect["confirm"] and form.get("confirm") != "yes":
            errors = {"confirm": "Tick the box once the app is uninstalled."}
            return await self._render(request, 400, "connect.html", **view, token=token, errors=errors, values={})
        profile: Profile = view["profile"]
        key = view["provider"].key
        redirect = callback_url(self.public_url, key)
        try:
            claimed = await anyio.to_thread.run_sync(
                lambda: self.sessions.claim(Secret(token), provider=key, profile=profile.name)
            )
        except SessionError as exc:
            raise _refused(exc, 410) from None
        try:
            if session.connection_id is not None:
                scopes = tuple(
                    dict.fromkeys((*self.connector.reconnect_plan(session.connection_id).scopes, *session.scopes))
                )
                start = await anyio.to_thread.run_sync(
                    lambda: self.connector.begin_reconnect(
                        session.connection_id or "", scopes=scopes, redirect_uri=redirect, confirmed=True
                    )
                )
            else:
                start = await anyio.to_thread.run_sync(
                    lambda: self.connector.begin(
                        profile.name, redirect_uri=redirect, scopes=session.scopes or None, owner=session.owner
                    )
                )
        except (ConnectorError, ConfirmationRequired) as exc:
            await anyio.to_thread.run_sync(self.sessions.fail, claimed.id, exc.code or "not_started", exc.message)
            return await self._failed(request, claimed, view["provider"].display_name, exc)
        state = dict(parse_qsl(urlsplit(start.url).query)).get("state", "")
        response = RedirectResponse(start.url, status_code=303)
        response.set_cookie(
            self._cookie(f"flow_{_state_key(state)}"),
            claimed.id,
            max_age=FLOW_COOKIE_AGE,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )
        return response

    async def _connect_with(
        self, request: Request, token: str, session: ConnectSession, view: dict[str, Any], form: Mapping[str, str]
    ) -> Response:
        """Connect with the credentials the end user typed (nothing for a client credentials
        grant); the session is claimed only once the provider accepted them."""
        profile: Profile = view["profile"]
        key = view["provider"].key
        values: dict[str, str | Secret] = {}
        for field in view["fields"]:
            value = form.get(f"field_{field.name}", "")
            if value.strip() or field.required:
                values[field.name] = Secret(value) if field.secret else value
        shown = {f.name: form.get(f"field_{f.name}", "") for f in view["fields"] if not f.secret}
        missing = {
            f.name: f"Enter the {f.label}."
            for f in view["fields"]
            if f.required and not form.get(f"field_{f.name}", "").strip()
        }
        if missing:  # every empty field at once, before anything is sent anywhere
            return await self._render(request, 400, "connect.html", **view, token=token, errors=missing, values=shown)
        claimed: list[ConnectSession] = []

        def claim() -> None:
            claimed.append(self.sessions.claim(Secret(token), provider=key, profile=profile.name))

        reconnecting = session.connection_id is not None
        try:
            # In a worker thread, with the connector's thread-safe client: the event loop stays free,
            # and no client is bound to the loop of whoever mounted the app.
            result: ConnectResult = await anyio.to_thread.run_sync(
                lambda: self.connector.connect(
                    profile.name,
                    values,
                    connection_id=session.connection_id,
                    owner=None if reconnecting else session.owner,
                    separate=session.separate,
                    before_save=claim,
                )
            )
        except SessionError as exc:
            raise _refused(exc, 410) from None
        except ValidationError as exc:
            label = next((f.label for f in view["fields"] if f.name == exc.field), None)
            errors = {exc.field: _field_words(exc, label)} if label else {"form": exc.message}
            return await self._render(request, 400, "connect.html", **view, token=token, errors=errors, values=shown)
        except CredentialsRejected as exc:
            # In the end user's words: not the test request's method and path.
            name = view["provider"].display_name
            if exc.status == 403:
                message = f"{name} accepted these details but does not let them read what this connection needs."
            else:
                message = f"{name} did not accept these details. Check them and try again."
            errors = {"form": message, "guidance": exc.guidance or ""}
            return await self._render(request, 400, "connect.html", **view, token=token, errors=errors, values=shown)
        except (TransientError, ConnectorError) as exc:
            if claimed:  # stored nothing, but the session is used: say so and end it
                await anyio.to_thread.run_sync(self.sessions.fail, claimed[0].id, exc.code or "failed", exc.message)
                return await self._failed(request, claimed[0], view["provider"].display_name, exc)
            errors = {
                "form": f"{view['provider'].display_name} could not be reached to check these details. Try again."
            }
            log.warning("connect session %s: connecting failed: %s", session.id, exc.message)
            return await self._render(request, 502, "connect.html", **view, token=token, errors=errors, values=shown)
        done = await anyio.to_thread.run_sync(self.sessions.complete, claimed[0].id, result.connection.id)
        return await self._finished(request, done, "connected", result.connection.id, view["provider"].display_name)

    # ------------------------------------------------------------- callback

    async def callback(self, request: Request) -> Response:
        key = request.path_params["provider"]
        try:
            if not _KEY_RE.fullmatch(key):
                raise _Page(404, "error.html", title="Not found", message="There is no such provider here.")
            try:
                name = self.connector.plugins.provider(key).display_name
            except ConnectorError:
                raise _Page(404, "error.html", title="Not found", message="There is no such provider here.") from None
            params = _callback_params(request)
            state = params.get("state")
            if state is None:
                return await self._install(request, key, name, params)
            return await self._authorized(request, key, name, params, state)
        except _Page as page:
            return await self._render(request, page.status, page.template, **page.context)

    async def _authorized(self, request: Request, key: str, name: str, params: dict[str, str], state: str) -> Response:
        cookie = self._cookie(f"flow_{_state_key(state)}")
        sid = request.cookies.get(cookie)
        if sid is None or not _SESSION_ID_RE.fullmatch(sid):
            raise _Page(
                400,
                "error.html",
                title="This sign-in cannot be finished here",
                message=f"It was started in another browser, or this browser did not keep its cookie. Go back to "
                f"the platform and connect {name} again from this browser.",
            )
        try:
            session = await in_store_thread(self.sessions.get, sid)
        except UnknownNameError:
            raise _Page(
                400, "error.html", title="This sign-in cannot be finished", message=_SESSION_WORDS["unknown"]
            ) from None
        if session.status is not SessionStatus.USED or session.picked_provider != key:
            raise _Page(
                400,
                "error.html",
                title="This sign-in was already finished",
                message="Nothing more to do here. To connect again, go back to the platform.",
            )
        try:
            result = await anyio.to_thread.run_sync(
                lambda: self.connector.complete(params, profile=session.picked_profile, separate=session.separate)
            )
        except StateError as exc:
            log.info("connect session %s: callback refused: %s", session.id, exc.message)
            raise _Page(
                400,
                "error.html",
                title="This sign-in cannot be finished",
                message="It was already used or it expired. Go back to the platform and connect again.",
            ) from None
        except ConnectorError as exc:
            failed = await anyio.to_thread.run_sync(self.sessions.fail, session.id, _error_code(exc), exc.message)
            return await self._failed(request, failed, name, exc, clear=cookie)
        connection = result.connection
        mine = (
            connection.id == session.connection_id
            if session.connection_id is not None
            else connection.owner.end_user is not None
            and session.owner.end_user is not None
            and connection.owner.end_user.id == session.owner.end_user.id
        )
        if not mine:  # cannot happen through begin(); never hand a connection to another end user's session
            log.error("connect session %s: connection %s is not the session's; refused", session.id, connection.id)
            failed = await anyio.to_thread.run_sync(
                self.sessions.fail, session.id, "not_this_session", "the connection made is not this session's"
            )
            return await self._failed(request, failed, name, None, clear=cookie)
        done = await anyio.to_thread.run_sync(self.sessions.complete, session.id, connection.id)
        return await self._finished(request, done, "connected", connection.id, name, clear=cookie)

    async def _install(self, request: Request, key: str, name: str, params: dict[str, str]) -> Response:
        """A code with no state of ours: an install begun at the provider."""
        if "code" not in params:
            message = "The link is missing what the provider sends back."
            if "error" in params:
                message = f"{name} reported a problem ({params['error'][:60]}) and nothing was connected."
            raise _Page(400, "error.html", title="Nothing was connected", message=message)
        profile = await anyio.to_thread.run_sync(self._install_profile, key)
        if profile is None:
            raise _Page(
                400,
                "error.html",
                title="Start from the platform",
                message=f"This service does not take installs begun in {name}. "
                "Go to the platform and connect from there.",
            )
        try:
            result = await anyio.to_thread.run_sync(
                lambda: self.connector.complete_provider_initiated(
                    profile, params, redirect_uri=callback_url(self.public_url, key)
                )
            )
        except ConnectorError as exc:
            log.info("an install begun at %s failed: %s", key, exc.message)
            return await self._render(request, _page_status(exc), "done.html", **self._outcome(None, name, exc))
        conn = result.connection
        target = None
        if self.config.install_redirect_url is not None:
            target = _with_query(
                self.config.install_redirect_url, connection_id=conn.id, provider=key, status="installed"
            )
        return await self._render(
            request,
            200,
            "installed.html",
            name=name,
            identity=dict(conn.identity),
            target=target,
            reconnected=conn.owner.end_user is not None,
        )

    def _install_profile(self, key: str) -> str | None:
        """The profile taking installs begun at ``key``: the configured one, else its only
        profile whose authorization code grant allows them."""
        configured = self.config.install_profiles.get(key)
        if configured is not None:
            return configured
        try:
            decl = self.connector.plugins.declaration(key)
        except ConnectorError:
            return None
        eligible = []
        for profile in self.connector.store.list_profiles():
            if profile.provider != key:
                continue
            auth = decl.auth_type(profile.auth_type)
            if isinstance(auth, OAuth2AuthorizationCode) and auth.provider_initiated_install:
                eligible.append(profile.name)
        if len(eligible) != 1:
            if eligible:
                log.warning("an install began at %s but several profiles could take it: set install_profiles", key)
            return None
        return eligible[0]

    # --------------------------------------------------------------- answers

    def _cookie(self, name: str) -> str:
        return ("__Host-connector_" if self.secure else "connector_") + name

    def _outcome(self, session: ConnectSession | None, name: str | None, exc: ConnectorError | None) -> dict[str, Any]:
        """A failure in plain words."""
        provider = name or "The provider"
        procedures: tuple[Any, ...] = ()
        code = _error_code(exc) if exc is not None else "failed"
        if isinstance(exc, AccessDenied):
            title, message = "Not connected", f"Access was declined at {provider}, so nothing was connected."
        elif isinstance(exc, AlreadyInstalled):
            title = "Uninstall the app first"
            message = f"{provider} says the app is already installed in this company. Uninstall it, then start again."
            procedures = self._uninstall_steps(session)
        elif isinstance(exc, OAuthError) and exc.error == "invalid_issuer":
            title, message = "Not connected", f"{provider}'s answer could not be verified, so nothing was connected."
        elif exc is not None:
            title, message = "Not connected", f"Connecting {provider} did not work: {exc.message}"
        else:
            title, message = "Not connected", "Connecting did not work. Go back to the platform and try again."
        return {
            "kind": "error",
            "title": title,
            "message": message,
            "procedures": procedures,
            "code": code,
            "target": None,
        }

    def _uninstall_steps(self, session: ConnectSession | None) -> tuple[Any, ...]:
        """The provider's steps to uninstall its app, for the session's environment."""
        if session is None or session.picked_provider is None or session.picked_profile is None:
            return ()
        try:
            policy = self.connector.plugins.declaration(session.picked_provider).reconnect_policy
            profile = self.connector.store.get_profile(session.picked_profile, with_secrets=False)
        except ConnectorError:
            return ()
        return policy.procedures_for(profile.environment) if policy is not None else ()

    async def _failed(
        self,
        request: Request,
        session: ConnectSession,
        name: str | None,
        exc: ConnectorError | None,
        *,
        clear: str | None = None,
    ) -> Response:
        outcome = self._outcome(session, name, exc)
        if session.redirect_url:
            outcome["target"] = _with_query(session.redirect_url, status="error", error=outcome["code"])
        event = {"type": "error", "connection_id": session.connection_id, "error": outcome["code"]}
        return await self._render(request, _page_status(exc), "done.html", **outcome, event=event, clear=clear)

    async def _finished(
        self,
        request: Request,
        session: ConnectSession,
        kind: str,
        connection_id: str | None,
        name: str | None,
        *,
        clear: str | None = None,
    ) -> Response:
        if kind == "connected":
            title, message = "Connected", f"{name} is connected. You can close this window."
            query = {"connection_id": connection_id or "", "status": "connected"}
        else:
            title, message = "Cancelled", "Nothing was connected. You can close this window."
            query = {"status": "cancelled"}
            if session.connection_id:
                query = {"connection_id": session.connection_id, **query}
        target = _with_query(session.redirect_url, **query) if session.redirect_url else None
        event = {"type": kind, "connection_id": connection_id or session.connection_id}
        return await self._render(
            request,
            200,
            "done.html",
            kind=kind,
            title=title,
            message=message,
            procedures=(),
            code=None,
            target=target,
            event=event,
            clear=clear,
        )

    async def _render(self, request: Request, status: int, template: str, **context: Any) -> Response:
        nonce = secrets.token_urlsafe(16)
        csrf = request.cookies.get(self._cookie("csrf"))
        if csrf is None or not re.fullmatch(r"[A-Za-z0-9_-]{43}", csrf):
            csrf = secrets.token_urlsafe(32)
        clear = context.pop("clear", None)
        context.setdefault("event", None)
        html = self.templates.get_template(template).render(
            **context, nonce=nonce, csrf=csrf, origins=list(self.config.embed_origins)
        )
        targets = " ".join(("'self'", *context.get("form_targets", ())))
        ancestors = " ".join(self.config.embed_origins) or "'none'"
        csp = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; img-src 'self' data:; "
            f"form-action {targets}; frame-ancestors {ancestors}; base-uri 'none'"
        )
        # same-origin, not no-referrer: under no-referrer browsers post the page's own forms with "Origin: null".
        response = HTMLResponse(
            html, status_code=status, headers={"Content-Security-Policy": csp, "Referrer-Policy": "same-origin"}
        )
        # SameSite=None (and Partitioned) so that a page framed by the platform still posts its form;
        # the Origin check is what stops other sites. Plain http (loopback) cannot have it.
        response.set_cookie(
            self._cookie("csrf"),
            csrf,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="none" if self.secure else "lax",
        )
        if self.secure:
            name = self._cookie("csrf")
            response.raw_headers = [
                (k, v + b"; Partitioned" if k == b"set-cookie" and v.startswith(name.encode()) else v)
                for k, v in response.raw_headers
            ]
        if clear is not None:
            response.delete_cookie(clear, path="/", secure=self.secure, httponly=True, samesite="lax")
        return response


# ----------------------------------------------------------------- helpers

_SESSION_TITLES = {
    "unknown": "This link is not valid",
    "expired": "This link has expired",
    "used": "This link was already used",
}
_SESSION_WORDS = {
    "unknown": "Go back to the platform and ask for a new connect link.",
    "expired": "Connect links work for a limited time. Go back to the platform and ask for a new one.",
    "used": "Each connect link works once. Go back to the platform and ask for a new one.",
}


def _field_words(exc: ValidationError, label: str) -> str:
    """A field's error for a person: without the field's name in front, nor a regular expression."""
    message = exc.message.removeprefix(f"{exc.field}: ")
    if "pattern" in message:
        return f"This does not look like a {label}: check it and try again."
    if "required" in message or "missing" in message or "empty" in message:
        return f"Enter the {label}."
    return message[:1].upper() + message[1:]


def _refused(exc: SessionError, status: int) -> _Page:
    """The page of a session token that cannot be used."""
    code = exc.code or "unknown"
    return _Page(
        status,
        "error.html",
        title=_SESSION_TITLES.get(code, "This link cannot be used"),
        message=_SESSION_WORDS.get(code, exc.message),
    )


def _iso(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def session_data(session: ConnectSession) -> dict[str, Any]:
    """A connect session as the API shows it (never its token)."""
    user = session.owner.end_user
    return {
        "id": session.id,
        "status": session.status.value,
        "end_user": None if user is None else {"id": user.id, "email": user.email, "display_name": user.display_name},
        "organisation": session.owner.organisation,
        "tags": list(session.owner.tags),
        "providers": list(session.providers),
        "profile": session.picked_profile or session.profile,
        "provider": session.picked_provider,
        "connection_id": session.result_connection_id or session.connection_id,
        "reconnect": session.connection_id is not None,
        "redirect_url": session.redirect_url,
        "created_at": session.created_at,
        "expires_at": _iso(session.expires_at),
        "used_at": session.used_at,
        "finished_at": session.finished_at,
        "error": None if session.error_code is None else {"code": session.error_code, "message": session.error_message},
    }


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return parts._replace(query=query).geturl()


def _callback_params(request: Request) -> dict[str, str]:
    """The callback's parameters, each at most once (a repeated one is refused, RFC 6749 §3.1)."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in found:
            raise _Page(400, "error.html", title="Nothing was connected", message="The link repeats a parameter.")
        found[name] = value
    return found


def _error_code(exc: ConnectorError) -> str:
    if isinstance(exc, AlreadyInstalled):
        return "already_installed"
    if isinstance(exc, OAuthError) and exc.error:
        return re.sub(r"[^a-z0-9_]", "_", exc.error.lower())[:60] or "failed"
    return re.sub(r"[^a-z0-9_]", "_", (exc.code or "failed").lower())[:60]


def _page_status(exc: ConnectorError | None) -> int:
    if isinstance(exc, AccessDenied):
        return 403
    if isinstance(exc, AlreadyInstalled):
        return 409
    if isinstance(exc, (StateError, ValidationError)):
        return 400
    return 502
