"""`type: secrets` — credentials exposed in a page or its same-origin scripts.

Fetches `url`, then up to `max_scripts` `<script src>` of the same origin (each up to
`max_script_bytes`), and looks in all of them for:

    Stripe secret / restricted live keys   sk_live_…, rk_live_…
    Supabase service-role JWTs             a JWT whose payload says "role": "service_role"
    Supabase secret keys, access tokens    sb_secret_…, sbp_…
    AWS access key ids                     AKIA… / ASIA… + 16
    PEM private keys                       -----BEGIN … PRIVATE KEY-----

Any of them -> security_breach SEV-1. Publishable keys (pk_live_, sb_publishable_) and
anon JWTs are meant to be public and are ignored. Stripe *test* keys (sk_test_,
rk_test_) cannot move money, so by default (`test_keys: warn`) they are reported as
`degraded` SEV-3 (a bug to fix, not a halt); `breach` treats them like live keys,
`ignore` skips them.

A credential is only ever shown as redact.fingerprint(key): prefix and short hash.
A page that cannot be fetched is api_failure SEV-3 (the http check owns "site down").
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urljoin, urlsplit

import orjson

from monitor.conditions import DEGRADED, SECURITY_BREACH
from monitor.probes import ProbeContext, register
from monitor.probes._http import Response, fetch
from monitor.probes._platform import expect_ok, failed
from monitor.redact import fingerprint, safe_url
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.schema import HttpUrl

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Stripe secret key", re.compile(r"(?<![0-9A-Za-z_])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,247}")),
    ("Supabase secret key", re.compile(r"(?<![0-9A-Za-z_])sb_secret_[0-9A-Za-z_-]{10,}")),
    ("Supabase access token", re.compile(r"(?<![0-9A-Za-z_])sbp_(?:oauth_)?[0-9a-f]{40}(?![0-9A-Za-z])")),
    ("AWS access key id", re.compile(r"(?<![0-9A-Z])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])")),
    (
        "PEM private key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]{0,8192}?-----END [A-Z ]*PRIVATE KEY-----"),
    ),
    ("Supabase service-role JWT", re.compile(r"eyJ[0-9A-Za-z_-]+\.eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+")),
)
_TEST_KEY = re.compile(r"^(?:sk|rk)_test_")


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretsCheck:
    url: HttpUrl
    max_scripts: int = 20
    max_script_bytes: int = 2 << 20
    test_keys: Literal["warn", "breach", "ignore"] = "warn"
    headers: dict[str, str] = field(default_factory=dict)

    def check(self) -> Iterator[tuple[str, str]]:
        if not 0 <= self.max_scripts <= 200:
            yield "max_scripts", "must be between 0 and 200"
        if self.max_script_bytes < 1024:
            yield "max_script_bytes", "must be at least 1024"


@dataclass(frozen=True, slots=True)
class Leak:
    what: str
    key: str
    where: str
    line: int

    @property
    def shown(self) -> str:
        return f"{self.what} {fingerprint(self.key)} in {self.where} (line {self.line})"


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            src = dict(attrs).get("src")
            if src:
                self.sources.append(src.strip())


def script_urls(html: str, page_url: str, limit: int) -> list[str]:
    """Same-origin `<script src>` URLs of a page, absolute, deduplicated, at most `limit`."""
    parser = _Scripts()
    parser.feed(html)
    origin = _origin(page_url)
    out: list[str] = []
    for src in parser.sources:
        absolute = urljoin(page_url, src).split("#", 1)[0]
        if _origin(absolute) == origin and absolute not in out:
            out.append(absolute)
    return out[:limit]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def find_leaks(text: str, where: str) -> list[Leak]:
    """Every credential in `text` that must not be public (publishable and anon keys pass)."""
    leaks: list[Leak] = []
    seen: set[str] = set()
    for what, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            key = match.group(0)
            if key in seen or (what.endswith("JWT") and not _is_service_role(key)):
                continue
            seen.add(key)
            leaks.append(Leak(what, key, where, text.count("\n", 0, match.start()) + 1))
    return leaks


def _is_service_role(jwt: str) -> bool:
    try:
        payload = jwt.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, orjson.JSONDecodeError):
        return False
    return isinstance(claims, dict) and claims.get("role") == "service_role"


@register("secrets", SecretsCheck)
async def probe_secrets(check: SecretsCheck, ctx: ProbeContext) -> ProbeResult:
    where = safe_url(check.url)
    try:
        page = await fetch(ctx, check.url, headers=check.headers)
        expect_ok(page, "the page", ctx.clock.now())
    except Exception as exc:  # classified; the http check owns "site down"
        problem = failed(exc, where, ctx, severity=Severity.SEV3)
        return ProbeResult(duration=0.0, problems=(problem,), detail=f"could not scan: {problem.summary}")
    html = page.text()
    leaks = find_leaks(html, safe_url(page.url))
    scripts = script_urls(html, page.url, check.max_scripts)
    skipped: list[str] = []
    for url in scripts:
        body = await _script(ctx, url, check, skipped)
        if body is not None:
            leaks += find_leaks(body.text(), safe_url(url))
    problems = _problems(where, leaks, check.test_keys)
    detail = f"scanned the page and {len(scripts) - len(skipped)} script(s)"
    if skipped:
        detail += f"; could not read {len(skipped)}: {', '.join(skipped[:5])}"
    return ProbeResult(duration=page.elapsed, problems=problems, status_code=page.status, detail=detail)


async def _script(ctx: ProbeContext, url: str, check: SecretsCheck, skipped: list[str]) -> Response | None:
    try:
        resp = await fetch(ctx, url, headers=check.headers, max_body=check.max_script_bytes)
        expect_ok(resp, "the script", ctx.clock.now())
    except Exception:  # a script we cannot read leaks nothing we can see; noted in detail
        skipped.append(safe_url(url))
        return None
    return resp


def _problems(where: str, leaks: list[Leak], test_keys: str) -> tuple[Problem, ...]:
    live = [k for k in leaks if not _TEST_KEY.match(k.key)]
    test = [k for k in leaks if _TEST_KEY.match(k.key)]
    if test_keys == "breach":
        live, test = live + test, []
    elif test_keys == "ignore":
        test = []
    out: list[Problem] = []
    if live:
        kinds = sorted({k.what for k in live})
        out.append(
            Problem(
                condition=SECURITY_BREACH,
                kind=FailureKind.ANOMALY,
                summary=f"{where} exposes {len(live)} credential(s): {', '.join(kinds)}",
                evidence=tuple(k.shown for k in live),
            )
        )
    if test:
        out.append(
            Problem(
                condition=DEGRADED,
                kind=FailureKind.ANOMALY,
                severity=Severity.SEV3,
                summary=f"{where} exposes {len(test)} Stripe test key(s)",
                evidence=tuple(k.shown for k in test),
            )
        )
    return tuple(out)
