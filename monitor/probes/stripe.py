"""`type: stripe` — a Stripe account read through a restricted, read-only key.

Reachability: `GET /v1/balance`; a bad key (401/403) is api_failure kind auth, a 429
is api_failure and the check waits out Retry-After before calling again, 5xx and
unreadable answers are api_failure.

Anomalies (financial_error, SEV-1, see _platform_finance.py for the rules) over a
sliding `window`: `GET /v1/charges?created[gte]=…&limit=100&starting_after=…` while
`has_more`, plus `/v1/refunds`, `/v1/disputes` and `/v1/payouts?status=failed` when
their rules are on. A charge or payout is judged once: the ids already judged are kept
in ctx.state (so across restarts), and a finding is reported on the one probe that
first sees it. financial_error waits for a person to resolve it, so once is enough.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from monitor.probes import ProbeContext, register
from monitor.probes._errors import ProbeFailure
from monitor.probes._http import fetch
from monitor.probes._platform import Backoff, Fraction, RateLimited, expect_ok, failed, json_of
from monitor.probes._platform_finance import (
    Charge,
    failed_payouts,
    failed_ratio,
    judge_new_charges,
    over_count,
)
from monitor.redact import Secret, safe_url
from monitor.results import FailureKind, ProbeResult, Problem
from monitor.schema import Duration, HttpUrl, format_duration

PAGE_SIZE = 100
STRIPE_API = HttpUrl("https://api.stripe.com")
HOUR = Duration(3600)
FIVE_MINUTES = Duration(300)
HALF = Fraction(0.5)
_JUDGED = "stripe.judged_charges"
_PAYOUTS = "stripe.judged_payouts"


@dataclass(frozen=True, slots=True, kw_only=True)
class StripeCheck:
    api_key: Secret
    api_base: HttpUrl = STRIPE_API
    window: Duration = HOUR
    duplicate_window: Duration = FIVE_MINUTES
    amount_bounds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    currencies: tuple[str, ...] = ()
    max_failed_ratio: Fraction | None = HALF
    min_charges: int = 10
    max_refunds: int | None = None
    max_disputes: int | None = None
    check_payouts: bool = True
    max_pages: int = 10
    webhook_secret: Secret | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        key = self.api_key.reveal()
        if key.startswith(("pk_live_", "pk_test_")):
            yield "api_key", "is a publishable key; use a restricted read-only key (rk_…)"
        for currency, bounds in self.amount_bounds.items():
            if len(bounds) != 2 or bounds[0] > bounds[1] or bounds[0] < 0:
                yield "amount_bounds", f"{currency}: expected [min, max] in minor units with min <= max"
            if currency != currency.lower():
                yield "amount_bounds", f"{currency}: currency codes are lowercase, like usd"
        if any(c != c.lower() or len(c) != 3 for c in self.currencies):
            yield "currencies", "expected lowercase ISO codes like usd, eur"
        if self.window < 60:
            yield "window", "must be at least 1m"
        if self.max_pages < 1:
            yield "max_pages", "must be at least 1"
        if self.min_charges < 1:
            yield "min_charges", "must be at least 1"
        if self.webhook_secret is not None and not self.webhook_secret.reveal().startswith("whsec_"):
            yield "webhook_secret", "expected an endpoint signing secret starting with whsec_"


@dataclass(slots=True)
class Listing:
    items: list[Mapping[str, Any]]
    truncated: bool = False


class StripeApi:
    """The few list endpoints the probe reads, each bounded to `max_pages` pages."""

    def __init__(self, check: StripeCheck, ctx: ProbeContext) -> None:
        self.check = check
        self.ctx = ctx
        self.base = check.api_base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {check.api_key.reveal()}", "Accept": "application/json"}

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        resp = await fetch(self.ctx, f"{self.base}{path}{query}", headers=self.headers)
        expect_ok(resp, f"GET {path}", self.ctx.clock.now())
        return json_of(resp, f"GET {path}")

    async def list(self, path: str, params: Mapping[str, str | int]) -> Listing:
        out = Listing([])
        after: str | None = None
        for _ in range(self.check.max_pages):
            page = await self.get(path, {**params, "limit": PAGE_SIZE, **({"starting_after": after} if after else {})})
            data = page.get("data") if isinstance(page, Mapping) else None
            if not isinstance(data, list):
                raise ProbeFailure(FailureKind.ASSERTION, f"GET {path} answered something that is not a list object")
            out.items += [d for d in data if isinstance(d, Mapping)]
            if not page.get("has_more") or not data:
                return out
            after = str(data[-1].get("id"))
        out.truncated = True
        return out


@register("stripe", StripeCheck)
async def probe_stripe(check: StripeCheck, ctx: ProbeContext) -> ProbeResult:
    where = safe_url(check.api_base)
    backoff = Backoff(ctx)
    left = await backoff.waiting()
    if left > 0:
        return backoff.still_limited(where, left)
    start = ctx.clock.monotonic()
    try:
        problems, detail = await _survey(check, ctx, StripeApi(check, ctx))
    except RateLimited as exc:
        await backoff.start(exc.wait)
        return ProbeResult(
            duration=ctx.clock.monotonic() - start, problems=(failed(exc, where, ctx),), detail=exc.message
        )
    except Exception as exc:  # classified; a probe never raises for the target's sake
        problem = failed(exc, where, ctx)
        return ProbeResult(duration=ctx.clock.monotonic() - start, problems=(problem,), detail=problem.summary)
    return ProbeResult(duration=ctx.clock.monotonic() - start, problems=tuple(problems), detail=detail)


async def _survey(check: StripeCheck, ctx: ProbeContext, api: StripeApi) -> tuple[list[Problem], str]:
    """Read everything first, then judge: a failed read must not mark charges as judged."""
    await api.get("/v1/balance")
    now = ctx.clock.now()
    since = int(now - check.window)
    window = {"created[gte]": since}
    listing = await api.list("/v1/charges", window)
    refunds = await api.list("/v1/refunds", window) if check.max_refunds is not None else None
    disputes = await api.list("/v1/disputes", window) if check.max_disputes is not None else None
    payouts = await api.list("/v1/payouts", {**window, "status": "failed"}) if check.check_payouts else None

    span = f"in the last {format_duration(check.window)}"
    charges = [c for c in map(Charge.from_json, listing.items) if c is not None]
    new = await _unjudged(ctx, _JUDGED, {c.id: c.created for c in charges}, since - check.duplicate_window)
    problems = judge_new_charges(charges, check, new)
    problems += failed_ratio(charges, check)
    if refunds is not None:
        problems += over_count("refunds", _ids(refunds), check.max_refunds, span)
    if disputes is not None:
        problems += over_count("disputes", _ids(disputes), check.max_disputes, span)
    if payouts is not None:
        seen = {str(p.get("id")): float(p.get("created") or now) for p in payouts.items}
        fresh = await _unjudged(ctx, _PAYOUTS, seen, since)
        problems += failed_payouts([p for p in payouts.items if str(p.get("id")) in fresh])
    detail = f"{len(charges)} charges {span}, {len(new)} new"
    if listing.truncated:
        detail += f" (read only the newest {check.max_pages * PAGE_SIZE}; raise max_pages)"
    return problems, detail


def _ids(listing: Listing) -> list[str]:
    return [str(item.get("id")) for item in listing.items]


async def _unjudged(ctx: ProbeContext, key: str, seen: Mapping[str, float], keep_after: float) -> set[str]:
    """Ids in `seen` not judged by an earlier probe; records them all as judged now."""
    stored = await ctx.state.get(key)
    judged: dict[str, float] = dict(stored) if isinstance(stored, Mapping) else {}
    new = {i for i in seen if i not in judged}
    judged.update(seen)
    await ctx.state.put(key, {i: t for i, t in judged.items() if t >= keep_after})
    return new
