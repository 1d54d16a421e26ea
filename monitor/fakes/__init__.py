"""Local stand-ins for the platforms monitor watches: real aiohttp.web servers speaking
the real wire formats, scriptable to fail. Used by `monitor demo` and the tests.

They bind 127.0.0.1 only. Every fake has `await start(port=0) -> base URL`, `await stop()`,
`fail(status, times=1, retry_after=None)` to answer the next requests with an error in
the platform's own error format, `garble(times=1)` to answer with a body that is not
JSON, and `requests` (method and path of everything received).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Scripted:
    status: int
    retry_after: float | None = None
    garbled: bool = False
    path: str = ""  # only requests whose path starts with this


class FakeServer:
    """Base of every fake: lifecycle on 127.0.0.1 and scripted failures."""

    def __init__(self) -> None:
        self.app = web.Application(middlewares=[self._middleware])
        self.requests: list[str] = []
        self.url = ""
        self._script: list[Scripted] = []
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Serve on host:port (0: any free port); return the base URL."""
        if host not in LOOPBACK:
            raise ValueError("fakes only listen on the loopback interface")
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail(self, status: int, times: int = 1, retry_after: float | None = None, path: str = "") -> None:
        """Answer the next `times` requests (under `path`) with `status` (and Retry-After when given)."""
        self._script += [Scripted(status, retry_after, path=path) for _ in range(times)]

    def garble(self, times: int = 1, path: str = "") -> None:
        """Answer the next `times` requests (under `path`) 200 with a body that is not JSON."""
        self._script += [Scripted(200, garbled=True, path=path) for _ in range(times)]

    def error_body(self, status: int) -> dict[str, object]:
        """The platform's JSON error body for `status`; fakes override it."""
        return {"message": f"error {status}"}

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        step = next((s for s in self._script if request.path.startswith(s.path)), None)
        if step is None:
            return await handler(request)
        self._script.remove(step)
        if step.garbled:
            return web.Response(status=200, text="<html>upstream hiccup", content_type="text/html")
        headers = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after is not None else {}
        return web.json_response(self.error_body(step.status), status=step.status, headers=headers)
