"""httpx clients that never keep a cookie: a cookie one answer sets is not sent with any later
request. The service's client to providers is shared by every connection (every tenant) of a
provider, and the webhook deliverer's by every endpoint: a cookie kept from one answer would ride
along on another's requests. Skipping the cookie jar is also a tenth of a small request's cost in
httpx (parsing ``Set-Cookie``, building the jar's request and response views)."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["CookielessAsyncClient", "CookielessClient"]


class _NoCookies(httpx.Cookies):
    """A jar that stays empty: nothing extracted from answers, nothing added to requests."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


_NONE = _NoCookies()


class CookielessClient(httpx.Client):
    """An ``httpx.Client`` that keeps no cookie (see the module doc)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NONE

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise AttributeError("this client keeps no cookies")


class CookielessAsyncClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that keeps no cookie (see the module doc)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NONE

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise AttributeError("this client keeps no cookies")
