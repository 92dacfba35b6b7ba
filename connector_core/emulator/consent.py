"""The consent page and the error page, as self-contained HTML.

No script, no third-party content, no external style sheet: one inline style
block allowed by a per-response nonce in the Content-Security-Policy. The
page is a plain POST form, so it works in any browser and with any HTML form
library.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from html import escape

import attrs

from ..models import ScopeCatalogue

__all__ = ["AudienceChoice", "ConsentPage", "error_page", "page_headers"]

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:44rem;margin:2rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
.banner{background:#fff4d6;border:1px solid #e7c66b;padding:.4rem .8rem;border-radius:4px;font-size:.9rem}
.muted{color:#5b6475;font-size:.92rem} .error{background:#fde8e8;border:1px solid #e39a9a;padding:.6rem .8rem}
h2{font-size:1.1rem;margin-top:1.6rem} h3{font-size:1rem;margin:1rem 0 .2rem}
ul{margin:.2rem 0 .6rem;padding-left:1.2rem} code{font-size:.9rem}
.sensitive{color:#9b1c1c;font-size:.8rem;font-weight:600;margin-left:.4rem}
fieldset{border:1px solid #d5d9e0;border-radius:6px;margin-top:1.2rem}
.options{margin:.2rem 0 .4rem 1.6rem} .actions{margin-top:1.6rem;display:flex;gap:1rem}
button{font-size:1rem;padding:.6rem 1.6rem;border-radius:6px;border:1px solid #1d4ed8;cursor:pointer}
button.allow{background:#1d4ed8;color:#fff} button.deny{background:#fff;color:#1d4ed8}
"""


def page_headers(nonce: str, *, form_targets: Sequence[str] = ()) -> dict[str, str]:
    """Headers for an emulator HTML page: no caching, no framing, no referrer, no script."""
    form_action = " ".join(["'self'", *form_targets])
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; form-action {form_action}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    }


def _document(title: str, body: str, nonce: str) -> bytes:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><style nonce="{nonce}">{_STYLE}</style></head>\n'
        f"<body><main>{body}</main></body></html>\n"
    ).encode()


@attrs.frozen
class AudienceChoice:
    key: str
    label: str
    description: str
    #: The values to pick from (e.g. the company's departments); empty when there is nothing to pick.
    options: tuple[str, ...]


@attrs.frozen
class ConsentPage:
    """Everything the consent page shows."""

    provider_name: str
    app_name: str
    app_id: str
    app_description: str
    environment_label: str
    credential_set: str
    company_id: str
    company_name: str
    scopes: tuple[str, ...]
    catalogue: ScopeCatalogue
    audiences: tuple[AudienceChoice, ...]
    all_or_nothing: bool
    request_id: str
    action: str
    redirect_uri: str
    error: str | None = None
    #: The previous form's choices, when the page is shown again after an error.
    chosen_audience: str | None = None
    chosen_options: tuple[str, ...] = ()
    chosen_scopes: tuple[str, ...] | None = None

    def render(self) -> tuple[bytes, str]:
        """The page and the nonce its Content-Security-Policy must allow."""
        nonce = secrets.token_urlsafe(16)
        e = escape
        parts = [
            f'<p class="banner">Emulated {e(self.provider_name)}: a local test server, not the real service.</p>',
            f"<h1>Install {e(self.app_name)}?</h1>",
            f'<p class="muted">App ID <code>{e(self.app_id)}</code> · {e(self.environment_label)} '
            f"({e(self.credential_set)} credentials) · company <strong>{e(self.company_name)}</strong> "
            f"(<code>{e(self.company_id)}</code>)</p>",
        ]
        if self.app_description:
            parts.append(f"<p>{e(self.app_description)}</p>")
        if self.error:
            parts.append(f'<p class="error" role="alert">{e(self.error)}</p>')
        parts.append(f'<form method="post" action="{e(self.action)}">')
        parts.append(f'<input type="hidden" name="request_id" value="{e(self.request_id)}">')
        parts.append("<h2>Requested access</h2>")
        if self.all_or_nothing:
            parts.append(
                f'<p class="muted">{e(self.app_name)} asks for all of the following. You allow all of it or none.</p>'
            )
        else:
            parts.append('<p class="muted">Untick anything you do not want to allow.</p>')
        parts.append(self._scope_sections())
        parts.append(self._audience_fieldset())
        parts.append(
            f'<p class="muted">Either choice sends you back to <code>{e(self.redirect_uri)}</code>.</p>'
            '<div class="actions">'
            '<button class="allow" type="submit" name="decision" value="allow">Allow</button>'
            '<button class="deny" type="submit" name="decision" value="deny">Deny</button>'
            "</div></form>"
        )
        title = f"Install {self.app_name} · {self.provider_name} emulator"
        return _document(title, "\n".join(parts), nonce), nonce

    def _scope_sections(self) -> str:
        e = escape
        requested = set(self.scopes)
        chosen = set(self.scopes if self.chosen_scopes is None else self.chosen_scopes)
        out = []
        for group in self.catalogue.groups:
            scopes = [s for s in group.scopes if s.name in requested]
            if not scopes:
                continue
            out.append(f'<section aria-label="{e(group.label)}"><h3>{e(group.label)}</h3>')
            if group.description:
                out.append(f'<p class="muted">{e(group.description)}</p>')
            out.append("<ul>")
            for scope in scopes:
                badge = '<span class="sensitive">sensitive</span>' if scope.sensitive else ""
                text = f"<code>{e(scope.name)}</code>: {e(scope.description)}{badge}"
                if self.all_or_nothing:
                    out.append(f"<li>{text}</li>")
                else:
                    checked = " checked" if scope.name in chosen else ""
                    out.append(
                        f'<li><label><input type="checkbox" name="scope" value="{e(scope.name)}"{checked}> '
                        f"{text}</label></li>"
                    )
            out.append("</ul></section>")
        return "\n".join(out)

    def _audience_fieldset(self) -> str:
        e = escape
        chosen = self.chosen_audience or (self.audiences[0].key if self.audiences else None)
        out = ["<fieldset><legend>Who the app may see</legend>"]
        for audience in self.audiences:
            checked = " checked" if audience.key == chosen else ""
            out.append(
                f'<div><label><input type="radio" name="audience" value="{e(audience.key)}"{checked}> '
                f"<strong>{e(audience.label)}</strong></label>"
            )
            if audience.description:
                out.append(f' <span class="muted">{e(audience.description)}</span>')
            if audience.options:
                out.append('<div class="options">')
                for option in audience.options:
                    on = " checked" if audience.key == chosen and option in self.chosen_options else ""
                    out.append(
                        f'<label><input type="checkbox" name="option:{e(audience.key)}" value="{e(option)}"{on}> '
                        f"{e(option)}</label><br>"
                    )
                out.append("</div>")
            out.append("</div>")
        out.append("</fieldset>")
        return "\n".join(out)


def error_page(
    title: str, error: str, description: str, *, details: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """A page for errors that must not be redirected (an unknown client, an unregistered redirect URI...)."""
    nonce = secrets.token_urlsafe(16)
    rows = "".join(f"<li>{escape(k)}: <code>{escape(v)}</code></li>" for k, v in (details or {}).items())
    body = (
        '<p class="banner">Emulated authorization server: a local test server, not the real service.</p>'
        f"<h1>{escape(title)}</h1>"
        f'<p class="error" role="alert"><code>{escape(error)}</code>: {escape(description)}</p>'
        + (f"<ul>{rows}</ul>" if rows else "")
    )
    return _document(title, body, nonce), nonce
