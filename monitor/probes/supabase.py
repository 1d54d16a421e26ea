"""`type: supabase` — one Supabase project: health, RLS, row counts, backups, migrations.

Each part runs only when its keys are set, and one part failing never hides another:

    auth_health      GET /auth/v1/health (anon key)                 -> api_failure
    storage_health   GET /storage/v1/health, {"healthy": true}      -> api_failure
    tables           HEAD /rest/v1/<table> answers 2xx              -> api_failure
    services         Management API GET /v1/projects/{ref}/health   -> api_failure (UNHEALTHY)
                                                                       degraded (COMING_UP)
    protected_tables anon GET /rest/v1/<t>?select=*&limit=1 must be [] or 401/403
                                                                    -> security_breach SEV-1
    watch            exact row count (Prefer: count=exact, Range 0-0, Content-Range
                     total); table gone (404, PGRST205, 42P01), fell by more than max_drop
                     since the last probe (kept in ctx.state), or below min_rows
                                                                    -> data_loss SEV-1
    backups          Management API GET /v1/projects/{ref}/database/backups: newest
                     COMPLETED older than max_age, newest FAILED, no backup, PITR off
                     while expected                                 -> data_loss SEV-2
    migrations       a view or RPC returns the applied version; lower than the last one
                     seen or than expected_version                  -> data_loss SEV-1

A 401/403 on any of them is api_failure kind auth (the key was rotated or is wrong).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from monitor.clock import parse_rfc3339
from monitor.conditions import API_FAILURE, DATA_LOSS, DEGRADED, SECURITY_BREACH
from monitor.probes import ProbeContext, register
from monitor.probes._errors import ProbeFailure
from monitor.probes._http import Response, fetch
from monitor.probes._platform import Fraction, error_message, expect_ok, failed, json_of
from monitor.redact import Secret, safe_url
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.schema import Duration, HttpUrl, format_duration

MANAGEMENT_API = HttpUrl("https://api.supabase.com")
HALF = Fraction(0.5)
BACKUP_MAX_AGE = Duration(26 * 3600)  # daily backups plus slack
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_VANISHED_CODES = frozenset({"PGRST205", "42P01"})
_COUNTS = "supabase.row_counts"
_VERSION = "supabase.migration_version"


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    table: str
    max_drop: Fraction | None = HALF
    min_rows: int | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        if not _IDENT.match(self.table):
            yield "table", f"expected a table name, got {self.table!r}"
        if self.min_rows is not None and self.min_rows < 0:
            yield "min_rows", "must not be negative"


@dataclass(frozen=True, slots=True, kw_only=True)
class Backups:
    max_age: Duration = BACKUP_MAX_AGE
    expect_pitr: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Migrations:
    view: str | None = None
    rpc: str | None = None
    column: str = "version"
    expected_version: str | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        if (self.view is None) == (self.rpc is None):
            yield "", "set exactly one of `view` or `rpc`"
        for key in ("view", "rpc", "column"):
            value = getattr(self, key)
            if value is not None and not _IDENT.match(value):
                yield key, f"expected an identifier, got {value!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SupabaseCheck:
    url: HttpUrl
    anon_key: Secret
    service_key: Secret | None = None
    management_token: Secret | None = None
    project_ref: str | None = None
    management_api: HttpUrl = MANAGEMENT_API
    auth_health: bool = True
    storage_health: bool = False
    tables: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    protected_tables: tuple[str, ...] = ()
    watch: tuple[Watch, ...] = ()
    backups: Backups | None = None
    migrations: Migrations | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        needs_api = bool(self.services) or self.backups is not None
        if needs_api and self.management_token is None:
            yield "management_token", "`services` and `backups` read the Management API and need a management_token"
        if needs_api and self.ref is None:
            yield "project_ref", "cannot be derived from the url; set it for `services` and `backups`"
        if self.watch and self.service_key is None:
            yield "service_key", "`watch` counts rows past RLS and needs the service_key"
        for key in ("tables", "protected_tables"):
            for name in getattr(self, key):
                if not _IDENT.match(name):
                    yield key, f"expected table names, got {name!r}"

    @property
    def ref(self) -> str | None:
        """The project ref: configured, or the first label of `<ref>.supabase.co`."""
        if self.project_ref:
            return self.project_ref
        host = urlsplit(self.url).hostname or ""
        return host.split(".")[0] if host.endswith(".supabase.co") else None


def key_headers(key: Secret) -> dict[str, str]:
    """`apikey` always; `Authorization: Bearer` only for JWT keys (sb_… keys are not JWTs)."""
    value = key.reveal()
    headers = {"apikey": value, "Accept": "application/json"}
    if value.startswith("eyJ"):
        headers["Authorization"] = f"Bearer {value}"
    return headers


class Project:
    """HTTP to one project and its Management API, with the right keys."""

    def __init__(self, check: SupabaseCheck, ctx: ProbeContext) -> None:
        self.check = check
        self.ctx = ctx
        self.base = check.url.rstrip("/")
        self.where = safe_url(self.base)

    def rest(self, table: str, query: Mapping[str, str] | None = None) -> str:
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.base}/rest/v1/{quote(table)}{suffix}"

    async def get(self, url: str, key: Secret, *, method: str = "GET", extra: Mapping[str, str] = {}) -> Response:
        return await fetch(self.ctx, url, method=method, headers={**key_headers(key), **extra})

    async def management(self, path: str) -> Any:
        token = self.check.management_token
        assert token is not None
        assert self.check.ref is not None
        url = f"{self.check.management_api.rstrip('/')}/v1/projects/{quote(self.check.ref)}{path}"
        headers = {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json"}
        resp = await fetch(self.ctx, url, headers=headers)
        what = f"the Management API ({path.split('?')[0]})"
        expect_ok(resp, what, self.ctx.clock.now())
        return json_of(resp, what)

    @property
    def privileged(self) -> Secret:
        return self.check.service_key or self.check.anon_key


Part = Callable[[Project], Awaitable[list[Problem]]]


@register("supabase", SupabaseCheck)
async def probe_supabase(check: SupabaseCheck, ctx: ProbeContext) -> ProbeResult:
    project = Project(check, ctx)
    start = ctx.clock.monotonic()
    parts: list[tuple[str, Part]] = []
    if check.auth_health:
        parts.append(("auth health", _auth_health))
    if check.storage_health:
        parts.append(("storage health", _storage_health))
    if check.tables:
        parts.append(("tables", _tables))
    if check.services:
        parts.append(("services", _services))
    if check.protected_tables:
        parts.append(("RLS canary", _rls_canary))
    if check.watch:
        parts.append(("row counts", _watch))
    if check.backups is not None:
        parts.append(("backups", _backups))
    if check.migrations is not None:
        parts.append(("migrations", _migrations))
    problems: list[Problem] = []
    for name, part in parts:
        problems += await _guarded(name, part, project)
    ran = ", ".join(name for name, _ in parts) or "nothing configured"
    return ProbeResult(duration=ctx.clock.monotonic() - start, problems=tuple(problems), detail=f"checked {ran}")


async def _guarded(name: str, part: Part, project: Project) -> list[Problem]:
    try:
        return await part(project)
    except Exception as exc:  # classified; one part failing never hides the others
        return [failed(exc, f"{project.where} ({name})", project.ctx)]


async def _auth_health(p: Project) -> list[Problem]:
    resp = await p.get(f"{p.base}/auth/v1/health", p.check.anon_key)
    expect_ok(resp, "GET /auth/v1/health", p.ctx.clock.now())
    return []


async def _storage_health(p: Project) -> list[Problem]:
    resp = await p.get(f"{p.base}/storage/v1/health", p.privileged)
    expect_ok(resp, "GET /storage/v1/health", p.ctx.clock.now())
    doc = json_of(resp, "GET /storage/v1/health")
    if isinstance(doc, Mapping) and doc.get("healthy") is False:
        return [
            Problem(condition=API_FAILURE, kind=FailureKind.ASSERTION, summary=f"{p.where} storage reports unhealthy")
        ]
    return []


async def _tables(p: Project) -> list[Problem]:
    out: list[Problem] = []
    for table in p.check.tables:
        resp = await p.get(p.rest(table, {"select": "*", "limit": "1"}), p.privileged, method="HEAD")
        if resp.status in (401, 403):
            expect_ok(resp, f"HEAD /rest/v1/{table}", p.ctx.clock.now())
        if not 200 <= resp.status < 300:
            summary = f"{p.where} table {table!r} answered {resp.status}"
            out.append(Problem(condition=API_FAILURE, kind=FailureKind.BAD_STATUS, summary=summary))
    return out


async def _services(p: Project) -> list[Problem]:
    query = urlencode([("services", s) for s in p.check.services])
    doc = await p.management(f"/health?{query}")
    if not isinstance(doc, list):
        raise ProbeFailure(FailureKind.ASSERTION, "the Management API answered a health report that is not a list")
    out: list[Problem] = []
    for item in doc:
        if not isinstance(item, Mapping):
            continue
        name, status = str(item.get("name")), str(item.get("status", ""))
        error = f": {str(item['error'])[:120]}" if item.get("error") else ""
        if status == "COMING_UP":
            out.append(
                Problem(condition=DEGRADED, kind=FailureKind.BAD_STATUS, summary=f"{p.where} {name} is COMING_UP")
            )
        elif status != "ACTIVE_HEALTHY" or item.get("healthy") is False:
            summary = f"{p.where} {name} is {status or 'unhealthy'}{error}"
            out.append(Problem(condition=API_FAILURE, kind=FailureKind.BAD_STATUS, summary=summary))
    return out


async def _rls_canary(p: Project) -> list[Problem]:
    """With only the anon key, a protected table must answer [] or refuse (401/403)."""
    out: list[Problem] = []
    for table in p.check.protected_tables:
        resp = await p.get(p.rest(table, {"select": "*", "limit": "1"}), p.check.anon_key)
        if resp.status in (401, 403):
            continue
        if resp.status == 404:
            summary = f"{p.where} RLS canary table {table!r} does not exist (404)"
            out.append(
                Problem(condition=API_FAILURE, kind=FailureKind.ASSERTION, severity=Severity.SEV3, summary=summary)
            )
            continue
        expect_ok(resp, f"GET /rest/v1/{table}", p.ctx.clock.now())
        rows = json_of(resp, f"GET /rest/v1/{table}")
        if isinstance(rows, list) and rows:
            out.append(
                Problem(
                    condition=SECURITY_BREACH,
                    kind=FailureKind.ANOMALY,
                    summary=f"{p.where} lets the anon key read the RLS-protected table {table!r}",
                    evidence=(f"anon GET /rest/v1/{table}?select=*&limit=1 returned {len(rows)} row(s)",),
                )
            )
    return out


async def row_count(p: Project, table: str) -> int | None:
    """Exact row count, or None when the table is gone. Other failures raise."""
    extra = {"Prefer": "count=exact", "Range-Unit": "items", "Range": "0-0"}
    resp = await p.get(p.rest(table, {"select": "*"}), p.privileged, extra=extra)
    if resp.status == 404 or _error_code(resp) in _VANISHED_CODES:
        return None
    expect_ok(resp, f"GET /rest/v1/{table}", p.ctx.clock.now())
    total = resp.headers.get("Content-Range", "").rpartition("/")[2].strip()
    if not total.isdigit():
        raise ProbeFailure(
            FailureKind.ASSERTION, f"GET /rest/v1/{table} answered without an exact count in Content-Range"
        )
    return int(total)


def _error_code(resp: Response) -> str | None:
    if resp.status < 400:
        return None
    try:
        doc = resp.json()
    except ProbeFailure:
        return None
    return str(doc.get("code")) if isinstance(doc, Mapping) and doc.get("code") else None


async def _watch(p: Project) -> list[Problem]:
    stored = await p.ctx.state.get(_COUNTS)
    counts: dict[str, int] = dict(stored) if isinstance(stored, Mapping) else {}
    out: list[Problem] = []
    for w in p.check.watch:
        now = await row_count(p, w.table)
        out += _judge_count(p.where, w, counts.get(w.table), now)
        if now is not None:
            counts[w.table] = now
    await p.ctx.state.put(_COUNTS, counts)
    return out


def _judge_count(where: str, w: Watch, before: int | None, now: int | None) -> Iterator[Problem]:
    def loss(summary: str, evidence: str) -> Problem:
        return Problem(condition=DATA_LOSS, kind=FailureKind.ANOMALY, summary=summary, evidence=(evidence,))

    if now is None:
        yield loss(f"{where} table {w.table!r} has vanished", f"{w.table}: was {before} rows, now not found")
        return
    if before and w.max_drop is not None and (before - now) / before > w.max_drop.value:
        drop = (before - now) / before
        yield loss(
            f"{where} table {w.table!r} lost {drop:.0%} of its rows (limit {w.max_drop})",
            f"{w.table}: {before} -> {now} rows",
        )
    if w.min_rows is not None and now < w.min_rows:
        yield loss(f"{where} table {w.table!r} has {now} rows, below {w.min_rows}", f"{w.table}: {now} rows")


async def _backups(p: Project) -> list[Problem]:
    rules = p.check.backups
    assert rules is not None
    doc = await p.management("/database/backups")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("backups"), list):
        raise ProbeFailure(FailureKind.ASSERTION, "the Management API answered a backup list without `backups`")
    out: list[Problem] = []
    if rules.expect_pitr and doc.get("pitr_enabled") is not True:
        out.append(_backup_problem(p.where, "has point-in-time recovery disabled", "pitr_enabled: false"))
    dated = sorted(
        (
            (parse_rfc3339(b["inserted_at"]), b)
            for b in doc["backups"]
            if isinstance(b, Mapping) and b.get("inserted_at")
        ),
        key=lambda pair: pair[0],
    )
    if not dated:
        if not doc.get("pitr_enabled"):
            out.append(_backup_problem(p.where, "has no backups", "backups: []"))
        return out
    _newest_at, newest = dated[-1]
    if newest.get("status") == "FAILED":
        out.append(
            _backup_problem(
                p.where, "failed its latest backup", f"backup {newest.get('id')} at {newest['inserted_at']}: FAILED"
            )
        )
    completed = [at for at, b in dated if b.get("status") == "COMPLETED"]
    age = p.ctx.clock.now() - completed[-1] if completed else None
    if age is None:
        out.append(_backup_problem(p.where, "has no completed backup", f"{len(dated)} backups, none COMPLETED"))
    elif age > rules.max_age:
        out.append(
            _backup_problem(
                p.where,
                f"has not completed a backup for {format_duration(round(age / 3600) * 3600)}",
                f"newest COMPLETED backup is {age / 3600:.1f}h old (limit {format_duration(rules.max_age)})",
            )
        )
    return out


def _backup_problem(where: str, what: str, evidence: str) -> Problem:
    return Problem(
        condition=DATA_LOSS,
        kind=FailureKind.ANOMALY,
        severity=Severity.SEV2,
        summary=f"{where} {what}",
        evidence=(evidence,),
    )


async def _migrations(p: Project) -> list[Problem]:
    m = p.check.migrations
    assert m is not None
    version = await _applied_version(p, m)
    stored = await p.ctx.state.get(_VERSION)
    out: list[Problem] = []
    if isinstance(stored, str) and version_key(version) < version_key(stored):
        out.append(_migration_problem(p.where, f"went back from migration {stored} to {version}", stored, version))
    if m.expected_version is not None and version_key(version) < version_key(m.expected_version):
        out.append(
            _migration_problem(
                p.where, f"is at migration {version}, below {m.expected_version}", m.expected_version, version
            )
        )
    if not isinstance(stored, str) or version_key(version) > version_key(stored):
        await p.ctx.state.put(_VERSION, version)
    return out


async def _applied_version(p: Project, m: Migrations) -> str:
    if m.rpc is not None:
        url = f"{p.base}/rest/v1/rpc/{quote(m.rpc)}"
        resp = await fetch(
            p.ctx,
            url,
            method="POST",
            headers={**key_headers(p.privileged), "Content-Type": "application/json"},
            body=b"{}",
        )
        what = f"POST /rest/v1/rpc/{m.rpc}"
    else:
        assert m.view is not None
        query = {"select": m.column, "order": f"{m.column}.desc", "limit": "1"}
        resp = await p.get(p.rest(m.view, query), p.privileged)
        what = f"GET /rest/v1/{m.view}"
    expect_ok(resp, what, p.ctx.clock.now())
    doc = json_of(resp, what)
    if isinstance(doc, list):
        doc = doc[0] if doc else None
    if isinstance(doc, Mapping):
        doc = doc.get(m.column)
    if doc is None or isinstance(doc, bool | list | Mapping):
        detail = error_message(resp)
        raise ProbeFailure(
            FailureKind.ASSERTION, f"{what} returned no migration version{': ' + detail if detail else ''}"
        )
    return str(doc)


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Order versions like people do: `20240101_x` < `20240102`, `1.10` > `1.9`."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in re.findall(r"\d+|[A-Za-z]+", version))


def _migration_problem(where: str, what: str, before: str, now: str) -> Problem:
    return Problem(
        condition=DATA_LOSS,
        kind=FailureKind.ANOMALY,
        summary=f"{where} {what}",
        evidence=(f"migration version {before} -> {now}",),
    )
