"""Real servers on 127.0.0.1 for the connect service's browser tests: the app under uvicorn in a
background thread, and a tiny "platform" (its redirect target and pages that frame the connect
page or open it as a popup)."""

from __future__ import annotations

import html
import http.server
import socket
import threading
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn

from connector_core.testing import http_client

__all__ = ["LiveApp", "Platform"]


class LiveApp:
    """``app`` served by uvicorn on a socket bound before the app exists (so its public URL is
    known up front: see :meth:`bind`), in a background thread; a context manager."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def bind(cls) -> LiveApp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # connections wait in the backlog until uvicorn accepts them
        return cls(sock)

    def start(self, app: Any) -> None:
        """Serve ``app``; returns once ``/healthz`` answered 200 (the socket listens already, so
        the request simply waits in its backlog until uvicorn accepts it)."""
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        with http_client(timeout=20) as client:
            answer = client.get(f"{self.url}/healthz")
        if answer.status_code != 200:
            raise RuntimeError(f"{self.url}/healthz answered {answer.status_code}")

    def close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError("uvicorn did not stop")
        self.sock.close()

    def __enter__(self) -> LiveApp:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# A test page, not a product one: no CSP, nothing escaped beyond the src attribute.
_RECORDER = """<script>
window.__events = [];
window.addEventListener("message", function (e) {
  var frame = document.getElementById("frame");
  window.__events.push({origin: e.origin, data: e.data,
                        source: frame && e.source === frame.contentWindow ? "frame"
                              : window.popup && e.source === window.popup ? "popup" : "other"});
});
</script>"""
_EMBED = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Platform: embedded</title>{recorder}
<style>body {{ margin: 0; font-family: sans-serif; background: #e9ecf2; }}
header {{ padding: .6rem 1rem; background: #30343b; color: #fff; }} iframe {{ width: 100%; height: 1200px; border: 0; }}
</style></head>
<body><header>The platform's settings page</header>
<iframe id="frame" title="Connect your HR system" src="{src}"></iframe>
</body></html>"""
_POPUP = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Platform: popup</title>{recorder}</head>
<body><button id="open">Connect your HR system</button>
<script>document.getElementById("open").addEventListener("click", function () {{
  window.popup = window.open({src}, "connect", "popup,width=640,height=800");
}});</script></body></html>"""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/done":
            self.server.done.append(query)
            body = "<!doctype html><title>Back at the platform</title><h1>Back at the platform</h1>"
        elif parts.path == "/embed":
            body = _EMBED.format(recorder=_RECORDER, src=html.escape(query.get("src", ""), quote=True))
        elif parts.path == "/popup":
            body = _POPUP.format(recorder=_RECORDER, src=_js_string(query.get("src", "")))
        else:  # the browser's own /favicon.ico
            self.send_response(204)
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _js_string(value: str) -> str:
    import json

    return json.dumps(value).replace("<", "\\u003c")


class _Server(http.server.ThreadingHTTPServer):
    done: list[dict[str, str]]


class Platform:
    """The platform's side on its own port: ``/done`` records each query it is sent back with
    (in :attr:`done`), ``/embed?src=URL`` frames ``URL`` and ``/popup?src=URL`` opens it in a
    popup from a button (``#open``); both record the ``message`` events they receive, with their
    origin, in ``window.__events``. A context manager."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.done = []
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def done(self) -> list[dict[str, str]]:
        return self._server.done

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
