"""Http11Pool, the bulk refresh's HTTP/1.1 client, against a scripted local server: what it
sends, keep-alive, its limits, and each transport failure as the httpx path words it."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from connector_core._http11 import Http11Pool
from connector_core._transport import DEADLINE_EXCEEDED, HttpResponse
from connector_core.errors import ValidationError
from connector_core.oauth import HttpRequest, TransientError

#: What the scripted server does with each request: (its raw bytes) -> the bytes to answer (None:
#: close the connection without answering).
Script = Callable[[bytes], Awaitable[bytes | None]]


def ok(body: bytes = b'{"ok": true}', *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Server:
    """A local HTTP/1.1 server answering each request with ``script``; it records every request
    and how many connections it accepted."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth2/token"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = await self.script(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def post(url: str, body: bytes = b"grant_type=refresh_token&refresh_token=r1", **kw: Any) -> HttpRequest:
    headers = (("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"))
    return HttpRequest("POST", url, kw.pop("headers", headers), body, **kw)


def no_fallback() -> httpx.AsyncClient:
    raise AssertionError("the fallback client was used")


def pool(**kw: Any) -> Http11Pool:
    return Http11Pool(max_connections=kw.pop("max_connections", 4), fallback=kw.pop("fallback", no_fallback), **kw)


def failure(response: HttpResponse) -> TransientError:
    assert response.status == 0 and response.failure is not None
    return response.failure


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(main())


def test_it_sends_what_httpx_would_and_keeps_the_connection_alive() -> None:
    async def answer(_: bytes) -> bytes:
        return ok(b'{"access_token": "a"}', "X-Many: 1", "X-Many: 2")

    async def main() -> tuple[Server, list[HttpResponse]]:
        async with Server(answer) as server:
            client = pool()
            responses = [await client.send_request(post(server.url)) for _ in range(3)]
            await client.aclose()
            return server, responses

    server, responses = run(main)
    assert server.connections == 1 and len(server.requests) == 3
    assert all(r.status == 200 and r.body == b'{"access_token": "a"}' and r.failure is None for r in responses)
    assert responses[0].headers["content-type"] == "application/json"
    assert responses[0].headers["x-many"] == "1, 2"  # as httpx joins a repeated header
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /oauth2/token HTTP/1.1"
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    assert fields[b"host"] == f"127.0.0.1:{server.port}".encode()
    assert fields[b"content-type"] == b"application/x-www-form-urlencoded" and fields[b"accept"] == b"application/json"
    assert fields[b"content-length"] == str(len(body)).encode() and body == b"grant_type=refresh_token&refresh_token=r1"
    assert fields[b"accept-encoding"] == b"identity"
    assert fields[b"user-agent"] == f"python-httpx/{httpx.__version__}".encode()


def test_at_most_max_connections_open_however_many_wait() -> None:
    async def answer(_: bytes) -> bytes:
        await asyncio.sleep(0.01)
        return ok()

    async def main() -> tuple[Server, list[HttpResponse]]:
        async with Server(answer) as server:
            client = pool(max_connections=2)
            responses = await asyncio.gather(*(client.send_request(post(server.url)) for _ in range(12)))
            await client.aclose()
            return server, list(responses)

    server, responses = run(main)
    assert [r.status for r in responses] == [200] * 12
    assert server.connections == 2


def test_chunked_and_gzipped_bodies_are_read_whole() -> None:
    body = b'{"access_token": "' + b"x" * 3000 + b'"}'
    packed = gzip.compress(body)

    async def answer(request: bytes) -> bytes:
        if b"chunked" in request:
            chunks = b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + 700]), body[i : i + 700]) for i in range(0, len(body), 700)
            )
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        return ok(packed, "Content-Encoding: gzip")

    async def main() -> list[HttpResponse]:
        async with Server(answer) as server:
            client = pool()
            return [
                await client.send_request(post(server.url, b"chunked")),
                await client.send_request(post(server.url, b"gzip")),
            ]

    chunked, gzipped = run(main)
    assert chunked.status == 200 and chunked.body == body and not chunked.truncated
    assert gzipped.status == 200 and gzipped.body == body and not gzipped.truncated


def test_a_body_over_the_cap_is_cut_and_its_connection_not_reused() -> None:
    async def answer(_: bytes) -> bytes:
        return ok(b"y" * 50_000)

    async def main() -> tuple[Server, HttpResponse, HttpResponse]:
        async with Server(answer) as server:
            client = pool()
            cut = await client.send_request(post(server.url, max_bytes=1000))
            whole = await client.send_request(post(server.url))
            return server, cut, whole

    server, cut, whole = run(main)
    assert cut.status == 200 and cut.truncated and len(cut.body) <= 1000
    assert whole.status == 200 and not whole.truncated and len(whole.body) == 50_000
    assert server.connections == 2


def test_a_connection_the_server_closes_or_left_idle_too_long_is_not_reused() -> None:
    async def answer(request: bytes) -> bytes:
        return ok(b"{}", "Connection: close") if b"close" in request else ok(b"{}")

    async def main() -> int:
        async with Server(answer) as server:
            closing = pool()
            for _ in range(2):
                assert (await closing.send_request(post(server.url, b"close"))).status == 200
            expiring = pool(keepalive_expiry=0.0)
            for _ in range(2):
                assert (await expiring.send_request(post(server.url))).status == 200
            return server.connections

    assert run(main) == 4


def test_transport_failures_come_back_as_the_httpx_path_words_them() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]

    async def hang_up(_: bytes) -> None:
        return None

    async def never(_: bytes) -> bytes:
        await asyncio.sleep(30)
        return ok()

    async def main() -> dict[str, HttpResponse]:
        found = {"refused": await pool().send_request(post(f"http://127.0.0.1:{dead}/token"))}
        async with Server(hang_up) as server:
            found["hung up"] = await pool().send_request(post(server.url))
        async with Server(never) as server:
            found["read timeout"] = await pool(read_timeout=0.2).send_request(post(server.url))
            found["deadline"] = await pool().send_request(post(server.url), deadline=0.2)
        return found

    found = run(main)
    refused = failure(found["refused"])
    assert refused.message == f"cannot connect to 127.0.0.1:{dead}" and not refused.reached_server
    hung_up = failure(found["hung up"])
    assert hung_up.reached_server and hung_up.message.startswith("the connection to 127.0.0.1:")
    timed_out = failure(found["read timeout"])
    assert timed_out.reached_server and timed_out.message.endswith("(ReadTimeout)")
    overdue = failure(found["deadline"])
    assert overdue.error == DEADLINE_EXCEEDED and "did not answer in full within 0.2 s" in overdue.message


def test_what_it_cannot_send_is_refused_before_sending_and_non_ascii_hosts_go_to_the_fallback() -> None:
    sent: list[str] = []

    def fallback_answer(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    fallback = httpx.AsyncClient(transport=httpx.MockTransport(fallback_answer))

    async def main() -> HttpResponse:
        client = pool(fallback=lambda: fallback)
        with pytest.raises(ValidationError, match="refused before sending"):
            await client.send_request(post("http://auth.example/token"))  # plain http off loopback
        with pytest.raises(ValidationError, match="cannot be sent"):
            await client.send_request(post("http://127.0.0.1:9/token", headers=(("X-Name", "café"),)))
        return await client.send_request(post("https://bücher.example/token"))

    response = run(main)
    assert response.status == 200 and sent == ["https://xn--bcher-kva.example/token"]


def test_a_tls_server_no_trusted_authority_vouches_for_is_refused_before_anything_is_sent(tmp_path: Any) -> None:
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            received.append(await reader.read(100))
        writer.close()

    async def main() -> HttpResponse:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            return await pool().send_request(post(f"https://127.0.0.1:{port}/oauth2/token"))
        finally:
            server.close()

    refused = failure(run(main))
    assert refused.message.startswith("cannot connect to 127.0.0.1:") and not refused.reached_server
    assert not any(received)  # not one byte of the request went out
