"""`type: http` — one request, checked for status, body, JSON fields and latency.

5xx and unreachable -> production_down; other bad statuses and failed assertions
-> api_failure; slower than `expect.max_latency` -> degraded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from monitor.conditions import API_FAILURE, DEGRADED, PRODUCTION_DOWN
from monitor.probes import ProbeContext, register
from monitor.probes._errors import ProbeFailure, classify
from monitor.probes._http import Response, fetch
from monitor.redact import safe_url
from monitor.results import FailureKind, ProbeResult, Problem
from monitor.schema import Duration, HttpUrl, Reader

UNREACHABLE = frozenset(
    {
        FailureKind.DNS,
        FailureKind.REFUSED,
        FailureKind.RESET,
        FailureKind.TIMEOUT,
        FailureKind.TLS,
        FailureKind.PROTOCOL,
        FailureKind.REDIRECT,
    }
)


@dataclass(frozen=True, slots=True)
class StatusSpec:
    """Accepted statuses: `200`, `[200, 204]`, `"2xx"`, `"200-299"`, or a list mixing them."""

    ranges: tuple[tuple[int, int], ...]
    text: str

    def accepts(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.ranges)

    @classmethod
    def parse(cls, items: list[object]) -> StatusSpec:
        ranges: list[tuple[int, int]] = []
        for item in items:
            text = str(item).strip().lower()
            if re.fullmatch(r"[1-5]xx", text):
                base = int(text[0]) * 100
                ranges.append((base, base + 99))
            elif m := re.fullmatch(r"(\d{3})\s*-\s*(\d{3})", text):
                ranges.append((int(m.group(1)), int(m.group(2))))
            elif re.fullmatch(r"\d{3}", text) and not isinstance(item, bool):
                ranges.append((int(text), int(text)))
            else:
                raise ValueError(text)
        if not ranges or any(not 100 <= lo <= hi <= 599 for lo, hi in ranges):
            raise ValueError(items)
        return cls(tuple(ranges), ", ".join(str(i) for i in items))

    @classmethod
    def from_yaml(cls, reader: Reader, node: yaml.Node, path: str) -> StatusSpec | None:
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        values = []
        for n in nodes:
            got = reader.scalar(n, path)
            if got is None:
                return None
            values.append(got[0])
        try:
            return cls.parse(values)
        except ValueError:
            shown = repr(values[0]) if len(values) == 1 and not isinstance(node, yaml.SequenceNode) else repr(values)
            reader.error(node, path, f"expected a status like 200, [200, 301], '2xx' or '200-299', got {shown}")
            return None


DEFAULT_STATUS = StatusSpec(((200, 399),), "2xx or 3xx")


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    status: StatusSpec = DEFAULT_STATUS
    body_contains: tuple[str, ...] | str | None = None
    body_not_contains: tuple[str, ...] | str | None = None
    json: dict[str, Any] = field(default_factory=dict)
    max_latency: Duration | None = None
    header: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCheck:
    url: HttpUrl
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expect: Expect = Expect()
    follow_redirects: bool = True
    max_redirects: int = 10
    max_body: int = 1 << 20
    verify_tls: bool = True

    def check(self) -> Iterator[tuple[str, str]]:
        if self.method.upper() not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            yield "method", f"expected an HTTP method like GET or POST, got {self.method!r}"
        if self.max_body < 1:
            yield "max_body", "must be at least 1 byte"
        if self.max_redirects < 0:
            yield "max_redirects", "must not be negative"
        has_userinfo = "@" in self.url.split("://", 1)[1].split("/", 1)[0]
        if has_userinfo and any(k.lower() == "authorization" for k in self.headers):
            yield "headers", "an Authorization header and a user:password@ in the URL cannot be combined; use one"


@register("http", HttpCheck)
async def probe_http(check: HttpCheck, ctx: ProbeContext) -> ProbeResult:
    where = safe_url(check.url)
    try:
        resp = await fetch(
            ctx,
            check.url,
            method=check.method.upper(),
            headers=check.headers,
            body=check.body.encode() if check.body is not None else None,
            allow_redirects=check.follow_redirects,
            max_redirects=check.max_redirects,
            max_body=check.max_body,
            ssl=check.verify_tls,
        )
    except Exception as exc:  # classified below; a probe never raises for the target's sake
        kind, sentence = classify(exc, timeout=ctx.timeout)
        condition = PRODUCTION_DOWN if kind in UNREACHABLE else API_FAILURE
        problem = Problem(condition=condition, kind=kind, summary=f"{where} {sentence}")
        return ProbeResult(
            duration=ctx.timeout if kind is FailureKind.TIMEOUT else 0.0, problems=(problem,), detail=sentence
        )
    problems = tuple(judge(check, resp, where))
    return ProbeResult(
        duration=resp.elapsed,
        problems=problems,
        status_code=resp.status,
        phases=resp.phases,
        detail=f"{resp.status} in {resp.elapsed * 1000:.0f}ms",
    )


def judge(check: HttpCheck, resp: Response, where: str) -> Iterator[Problem]:
    """Every expectation `resp` misses, most serious first."""
    status = resp.status
    if not check.expect.status.accepts(status):
        condition = PRODUCTION_DOWN if status >= 500 else API_FAILURE
        yield Problem(condition=condition, kind=FailureKind.BAD_STATUS, summary=f"{where} answered {status}")
        return
    yield from _assertions(check.expect, resp, where)
    limit = check.expect.max_latency
    if limit is not None and resp.elapsed > limit:
        yield Problem(
            condition=DEGRADED,
            kind=FailureKind.SLOW,
            summary=f"{where} answered in {resp.elapsed * 1000:.0f}ms, over the {limit} budget",
        )


def _assertions(expect: Expect, resp: Response, where: str) -> Iterator[Problem]:
    text = resp.text() if (expect.body_contains or expect.body_not_contains) else ""
    for needle in _as_tuple(expect.body_contains):
        if needle not in text:
            yield _assertion(f"{where} answered {resp.status} without the expected text {needle!r}")
    for needle in _as_tuple(expect.body_not_contains):
        if needle in text:
            yield _assertion(f"{where} answered {resp.status} with the forbidden text {needle!r}")
    for name, wanted in expect.header.items():
        got = resp.headers.get(name)
        if got is None or not re.search(wanted, got):
            yield _assertion(f"{where} answered without a {name} header matching {wanted!r}")
    if expect.json:
        try:
            doc = resp.json()
        except ProbeFailure as exc:
            yield Problem(condition=API_FAILURE, kind=exc.kind, summary=f"{where} {exc.message}")
            return
        for path, wanted in expect.json.items():
            found, value = json_path(doc, path)
            if not found or value != wanted:
                shown = repr(value) if found else "nothing"
                yield _assertion(f"{where} answered {path} = {shown[:80]}, expected {wanted!r}")


def _assertion(summary: str) -> Problem:
    return Problem(condition=API_FAILURE, kind=FailureKind.ASSERTION, summary=summary)


def _as_tuple(value: tuple[str, ...] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


def json_path(doc: Any, path: str) -> tuple[bool, Any]:
    """Follow `a.b[0].c` (or `a.b.0.c`) through JSON; (found, value)."""
    current = doc
    for part in re.findall(r"[^.\[\]]+", path):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current
