"""One HTTP exchange with per-phase timings and a capped body, shared by all HTTP probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from monitor.probes import ProbeContext
from monitor.probes._errors import BodyTooLarge, ProbeFailure
from monitor.results import FailureKind


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str
    elapsed: float
    phases: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON, or ProbeFailure(invalid_json)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ProbeFailure(
                FailureKind.INVALID_JSON, f"answered {self.status} with a body that is not JSON"
            ) from exc


def trace_config() -> aiohttp.TraceConfig:
    """Timings per phase where aiohttp exposes them: dns, connect (TCP+TLS), first_byte."""
    tc = aiohttp.TraceConfig()

    def mark(name: str) -> Any:
        async def handler(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
            marks = getattr(ctx.trace_request_ctx, "marks", None)
            if marks is not None:
                marks.setdefault(name, time.perf_counter())

        return handler

    tc.on_dns_resolvehost_start.append(mark("dns_start"))
    tc.on_dns_resolvehost_end.append(mark("dns_end"))
    tc.on_connection_create_start.append(mark("connect_start"))
    tc.on_connection_create_end.append(mark("connect_end"))
    tc.on_request_headers_sent.append(mark("sent"))
    tc.on_request_end.append(mark("headers"))
    return tc


def _phases(marks: dict[str, float], start: float, end: float) -> dict[str, float]:
    out: dict[str, float] = {}
    if "dns_start" in marks and "dns_end" in marks:
        out["dns"] = marks["dns_end"] - marks["dns_start"]
    if "connect_start" in marks and "connect_end" in marks:
        connect = marks["connect_end"] - marks["connect_start"]
        out["connect"] = max(0.0, connect - out.get("dns", 0.0))
    if "headers" in marks:
        out["first_byte"] = marks["headers"] - marks.get("sent", start)
    out["total"] = end - start
    return out


async def fetch(
    ctx: ProbeContext,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    max_body: int | None = None,
    ssl: bool = True,
) -> Response:
    """Do one request within ctx.timeout; transport errors propagate for classify()."""
    cap = ctx.max_body if max_body is None else max_body
    marks: dict[str, float] = {}
    start = time.perf_counter()
    async with asyncio.timeout(ctx.timeout):
        async with ctx.session.request(
            method,
            url,
            headers=headers,
            data=body,
            allow_redirects=allow_redirects,
            max_redirects=max_redirects,
            ssl=ssl,
            trace_request_ctx=SimpleNamespace(marks=marks),
        ) as resp:
            data = await read_capped(resp, cap)
            end = time.perf_counter()
            return Response(
                status=resp.status,
                reason=resp.reason or "",
                headers=resp.headers,
                body=data,
                url=str(resp.url),
                elapsed=end - start,
                phases=_phases(marks, start, end),
            )


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """Read at most `cap` bytes of (decompressed) body; more raises BodyTooLarge."""
    declared = resp.content_length
    if declared is not None and declared > cap and not resp.headers.get("Content-Encoding"):
        raise BodyTooLarge(cap)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.read(min(65536, cap + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge(cap)
