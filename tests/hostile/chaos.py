"""Chaos targets: real servers on 127.0.0.1 that misbehave in every way a monitor meets.

`ChaosServer` is one aiohttp app whose paths each fail differently (hang, trickle,
reset, a 1 GB body, a gzip bomb, a redirect loop, invalid JSON). `garbage_server`
is a raw asyncio server answering bytes that are not HTTP. `tls_server` serves
HTTPS with a certificate made in the test (trustme or cryptography): untrusted,
self-signed, expired or issued for another host. Nothing here talks to anything
but 127.0.0.1, and nothing builds a large body in memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GIB = 1 << 30
CHUNK = b"x" * 65536
BOMB_SIZE = 256 << 20  # decompressed bytes in the gzip bomb (~250 KB on the wire)
UNRESOLVABLE = "http://no-such-host.invalid/"  # RFC 2606: .invalid never resolves


def gzip_bomb(size: int = BOMB_SIZE) -> bytes:
    """`size` zero bytes, gzip-compressed without ever holding them: ~1000:1."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    zeros = bytes(1 << 20)
    parts = [comp.compress(zeros) for _ in range(size >> 20)]
    parts.append(comp.flush())
    return b"".join(parts)


@dataclass
class ChaosServer:
    """One app, one misbehaviour per path; `hits` counts requests per path."""

    base: str = ""
    hits: dict[str, int] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    _bomb: bytes | None = None

    def app(self) -> web.Application:
        app = web.Application()
        routes = {
            "/ok": self.ok,
            "/hang": self.hang,
            "/trickle": self.trickle,
            "/reset": self.reset,
            "/huge": self.huge,
            "/huge-chunked": self.huge_chunked,
            "/gzip-bomb": self.bomb,
            "/loop": self.loop,
            "/bad-json": self.bad_json,
            "/status/{code}": self.status,
        }
        for path, handler in routes.items():
            app.router.add_get(path, self._count(handler))
        return app

    def url(self, path: str) -> str:
        return self.base + path

    def _count(self, handler: web.RequestHandler) -> web.RequestHandler:  # type: ignore[type-arg]
        async def counted(request: web.Request) -> web.StreamResponse:
            key = request.path
            self.hits[key] = self.hits.get(key, 0) + 1
            return await handler(request)

        return counted

    async def ok(self, _: web.Request) -> web.Response:
        return web.Response(text="Add to cart")

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def hang(self, _: web.Request) -> web.Response:
        """Accepts the connection and the request, never sends a header."""
        await asyncio.sleep(3600)
        return web.Response(text="too late")

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        """Headers at once, then one byte a second of a body that never ends."""
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        for _ in range(3600):
            await resp.write(b".")
            await asyncio.sleep(1)
        return resp

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """Promises 100 KB, sends 10 KB, then drops the connection."""
        resp = web.StreamResponse()
        resp.content_length = 100_000
        await resp.prepare(request)
        await resp.write(b"y" * 10_000)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return resp

    async def huge(self, request: web.Request) -> web.StreamResponse:
        """Declares and streams 1 GB from one reused 64 KB chunk."""
        resp = web.StreamResponse()
        resp.content_length = GIB
        return await self._stream(request, resp, "/huge")

    async def huge_chunked(self, request: web.Request) -> web.StreamResponse:
        """1 GB, chunked: no Content-Length to refuse early, the cap must stop the read."""
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        return await self._stream(request, resp, "/huge-chunked")

    async def _stream(self, request: web.Request, resp: web.StreamResponse, key: str) -> web.StreamResponse:
        await resp.prepare(request)
        try:
            for _ in range(GIB // len(CHUNK)):
                await resp.write(CHUNK)
                self.bytes_sent[key] = self.bytes_sent.get(key, 0) + len(CHUNK)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the prober hung up, as it should
        return resp

    async def bomb(self, request: web.Request) -> web.StreamResponse:
        """A small gzip body that inflates to BOMB_SIZE bytes."""
        if self._bomb is None:
            self._bomb = await asyncio.to_thread(gzip_bomb)
        resp = web.StreamResponse(headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})
        resp.content_length = len(self._bomb)
        await resp.prepare(request)
        with suppress(ConnectionError):
            await resp.write(self._bomb)
        return resp

    async def loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(location=str(request.url.with_path("/loop")))

    async def bad_json(self, _: web.Request) -> web.Response:
        return web.Response(text='{"status": "ok", oops', content_type="application/json")


async def start_app(app: web.Application, *, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, int(port)


@asynccontextmanager
async def chaos_server() -> AsyncIterator[ChaosServer]:
    server = ChaosServer()
    runner, port = await start_app(server.app())
    server.base = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@asynccontextmanager
async def garbage_server(reply: bytes = b"SMTP READY\r\nthis is not http\r\n\r\n") -> AsyncIterator[str]:
    """A raw TCP server that answers any request with `reply` and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1024)
            writer.write(reply)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


# -- certificates --------------------------------------------------------------------------


def trustme_context(ca: trustme.CA, *, host: str = "127.0.0.1", days: int = 90) -> ssl.SSLContext:
    """Server context with a leaf from `ca` for `host`, valid until `days` from now (negative: expired)."""
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    not_before = min(now - dt.timedelta(days=30), not_after - dt.timedelta(days=1))
    leaf = ca.issue_cert(host, not_before=not_before, not_after=not_after)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


def self_signed_context(folder: Path) -> ssl.SSLContext:
    """A server context with a certificate that signs itself (cryptography, no CA at all)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "self.pem", folder / "self.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@asynccontextmanager
async def tls_server(context: ssl.SSLContext) -> AsyncIterator[str]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="Add to cart")

    app = web.Application()
    app.router.add_get("/", page)
    runner, port = await start_app(app, ssl_context=context)
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()
