"""`type: statuspage` — what a platform's own status page says about itself.

`format: atlassian` (default) reads Statuspage v2 `GET {url}/api/v2/summary.json`:
`status.indicator` none/minor/major/critical/maintenance and `components[].status`
operational/degraded_performance/partial_outage/major_outage/under_maintenance.
`format: stripe` reads Stripe's feed `GET {url}/current`: `largestatus` up/degraded/down
and a `statuses` map of service -> up/degraded/down.

    major, critical, partial_outage, major_outage, down  -> dependency_outage (SEV-2)
    minor, degraded_performance, degraded                -> degraded (SEV-3)
    maintenance, under_maintenance                       -> no problem (noted in detail)

With `components` listed, only those components are judged (the page-wide indicator
is noted in detail); a listed component missing from the page is an api_failure SEV-3.

A status page that cannot be read (unreachable, 5xx, not JSON) says nothing about the
platform itself, so it is an api_failure at SEV-3, never a dependency_outage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from monitor.conditions import API_FAILURE, DEGRADED, DEPENDENCY_OUTAGE
from monitor.probes import ProbeContext, register
from monitor.probes._errors import ProbeFailure
from monitor.probes._http import fetch
from monitor.probes._platform import expect_ok, failed, json_of
from monitor.redact import safe_url
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.schema import HttpUrl

OUTAGE = frozenset({"major", "critical", "partial_outage", "major_outage", "down"})
DEGRADATION = frozenset({"minor", "degraded_performance", "degraded"})
MAINTENANCE = frozenset({"maintenance", "under_maintenance", "pending", "paused"})
HEALTHY = frozenset({"none", "operational", "up"})
_PATHS = {"atlassian": "/api/v2/summary.json", "stripe": "/current"}


@dataclass(frozen=True, slots=True, kw_only=True)
class StatuspageCheck:
    url: HttpUrl
    format: Literal["atlassian", "stripe"] = "atlassian"
    components: tuple[str, ...] = ()
    path: str | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        if self.path is not None and not self.path.startswith("/"):
            yield "path", "must start with '/'"
        if len(set(self.components)) != len(self.components):
            yield "components", "lists a component twice"

    @property
    def feed_url(self) -> str:
        return self.url.rstrip("/") + (self.path or _PATHS[self.format])


@dataclass(frozen=True, slots=True)
class Reading:
    """One status: the page as a whole or one component."""

    name: str
    status: str


@register("statuspage", StatuspageCheck)
async def probe_statuspage(check: StatuspageCheck, ctx: ProbeContext) -> ProbeResult:
    where = safe_url(check.feed_url)
    try:
        resp = await fetch(ctx, check.feed_url, headers={"Accept": "application/json"})
        expect_ok(resp, "the status page", ctx.clock.now())
        doc = json_of(resp, "the status page")
        overall, parts = _read(check.format, doc)
    except Exception as exc:  # classified; a dead status page is not an outage of the platform
        problem = failed(exc, where, ctx, severity=Severity.SEV3)
        summary = f"{problem.summary} (status unknown; the platform itself may be fine)"
        unread = Problem(condition=API_FAILURE, kind=problem.kind, severity=Severity.SEV3, summary=summary)
        return ProbeResult(duration=0.0, problems=(unread,), detail="status page unreadable")
    judged = _select(check, overall, parts)
    problems = [p for r in judged if (p := _judge(r, where)) is not None]
    missing = [n for n in check.components if n not in {p.name for p in parts}]
    problems += [_missing(name, where) for name in missing]
    detail = _detail(overall, judged)
    return ProbeResult(duration=resp.elapsed, problems=tuple(problems), status_code=resp.status, detail=detail)


def _read(fmt: str, doc: Any) -> tuple[Reading, list[Reading]]:
    if not isinstance(doc, Mapping):
        raise ProbeFailure(FailureKind.ASSERTION, "answered JSON that is not a status summary")
    return _read_stripe(doc) if fmt == "stripe" else _read_atlassian(doc)


def _read_atlassian(doc: Mapping[str, Any]) -> tuple[Reading, list[Reading]]:
    status = doc.get("status")
    indicator = status.get("indicator") if isinstance(status, Mapping) else None
    if not isinstance(indicator, str):
        raise ProbeFailure(FailureKind.ASSERTION, "answered a summary without status.indicator")
    parts = [
        Reading(str(c["name"]), str(c.get("status", "")))
        for c in doc.get("components") or []
        if isinstance(c, Mapping) and "name" in c
    ]
    return Reading("page", indicator), parts


def _read_stripe(doc: Mapping[str, Any]) -> tuple[Reading, list[Reading]]:
    large = doc.get("largestatus", doc.get("UptimeStatus"))
    if not isinstance(large, str):
        raise ProbeFailure(FailureKind.ASSERTION, "answered a feed without largestatus")
    statuses = doc.get("statuses")
    parts = [Reading(str(k), str(v)) for k, v in statuses.items()] if isinstance(statuses, Mapping) else []
    return Reading("page", large), parts


def _select(check: StatuspageCheck, overall: Reading, parts: list[Reading]) -> list[Reading]:
    if not check.components:
        return [overall]
    wanted = set(check.components)
    return [p for p in parts if p.name in wanted]


def _judge(reading: Reading, where: str) -> Problem | None:
    status = reading.status.lower()
    subject = "reports" if reading.name == "page" else f"reports {reading.name!r} as"
    if status in OUTAGE:
        return Problem(condition=DEPENDENCY_OUTAGE, kind=FailureKind.BAD_STATUS, summary=f"{where} {subject} {status}")
    if status in DEGRADATION:
        return Problem(condition=DEGRADED, kind=FailureKind.BAD_STATUS, summary=f"{where} {subject} {status}")
    if status in HEALTHY or status in MAINTENANCE:
        return None
    return Problem(
        condition=API_FAILURE,
        kind=FailureKind.ASSERTION,
        severity=Severity.SEV3,
        summary=f"{where} {subject} an unknown status {status[:40]!r}",
    )


def _missing(name: str, where: str) -> Problem:
    return Problem(
        condition=API_FAILURE,
        kind=FailureKind.ASSERTION,
        severity=Severity.SEV3,
        summary=f"{where} has no component named {name!r}",
    )


def _detail(overall: Reading, judged: list[Reading]) -> str:
    shown = [f"{r.name}: {r.status}" for r in judged if r is not overall]
    text = f"page: {overall.status}" + (f"; {', '.join(shown)}" if shown else "")
    if any(r.status.lower() in MAINTENANCE for r in [overall, *judged]):
        text += " (scheduled maintenance in progress; not a problem)"
    return text
