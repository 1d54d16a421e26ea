"""The financial rules, pure: Stripe objects in, financial_error Problems out.

Shared by the stripe probe (which reads a sliding window of charges through the API) and
the webhook receiver (which judges one event at a time). Every finding names the object
ids in Problem.evidence. Amounts are in the currency's minor unit (cents), as Stripe
sends them.

Per-object rules (judged once per object):
    duplicate     same customer or payment_method, amount and currency, both succeeded
                  or pending, created within `duplicate_window` of each other
    bounds        a succeeded/pending charge outside `amount_bounds[currency]`
    currency      a charge in a currency not in `currencies`
    payout        a payout with status failed
Window rules (the probe only; a webhook event trips them only when the limit is 0):
    failed ratio  failed / all charges in the window over `max_failed_ratio`
                  (once at least `min_charges` charges were seen)
    refunds       more than `max_refunds` refunds in the window
    disputes      more than `max_disputes` disputes in the window
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from monitor.conditions import FINANCIAL_ERROR
from monitor.probes._platform import Fraction
from monitor.results import FailureKind, Problem

MAX_EVIDENCE = 20
MONEY_MOVING = frozenset({"succeeded", "pending"})


class Rules(Protocol):
    """The keys of a stripe check that the rules read."""

    @property
    def amount_bounds(self) -> Mapping[str, tuple[int, ...]]: ...
    @property
    def currencies(self) -> tuple[str, ...]: ...
    @property
    def duplicate_window(self) -> float: ...
    @property
    def max_failed_ratio(self) -> Fraction | None: ...
    @property
    def min_charges(self) -> int: ...
    @property
    def max_refunds(self) -> int | None: ...
    @property
    def max_disputes(self) -> int | None: ...
    @property
    def check_payouts(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Charge:
    id: str
    amount: int
    currency: str
    status: str
    created: float
    customer: str | None = None
    payment_method: str | None = None

    @classmethod
    def from_json(cls, doc: Any) -> Charge | None:
        """A Charge from Stripe's JSON, or None when the object is not a usable charge."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("id"), str):
            return None
        amount, created = doc.get("amount"), doc.get("created")
        if not isinstance(amount, int) or not isinstance(created, int | float):
            return None
        return cls(
            id=doc["id"],
            amount=amount,
            currency=str(doc.get("currency", "")).lower(),
            status=str(doc.get("status", "")),
            created=float(created),
            customer=_id_of(doc.get("customer")),
            payment_method=_id_of(doc.get("payment_method")),
        )

    def money(self) -> str:
        return f"{self.amount} {self.currency}"


def _id_of(value: Any) -> str | None:
    """Stripe fields are an id or, when expanded, an object with an id."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _finding(summary: str, evidence: Iterable[str]) -> Problem:
    items = list(evidence)
    if len(items) > MAX_EVIDENCE:
        items = [*items[:MAX_EVIDENCE], f"… and {len(items) - MAX_EVIDENCE} more"]
    return Problem(condition=FINANCIAL_ERROR, kind=FailureKind.ANOMALY, summary=summary, evidence=tuple(items))


def duplicates(charges: Sequence[Charge], rules: Rules, new: set[str]) -> Iterator[Problem]:
    """Pairs charged twice within `duplicate_window`; only pairs with a not-yet-judged charge."""
    pairs: list[tuple[Charge, Charge]] = []
    for key in ("customer", "payment_method"):
        groups: dict[tuple[str, int, str], list[Charge]] = {}
        for c in charges:
            payer = getattr(c, key)
            if payer and c.status in MONEY_MOVING:
                groups.setdefault((payer, c.amount, c.currency), []).append(c)
        for group in groups.values():
            group.sort(key=lambda c: c.created)
            pairs += [(a, b) for a, b in pairwise(group) if b.created - a.created <= rules.duplicate_window]
    unique = {(a.id, b.id): (a, b) for a, b in pairs if a.id in new or b.id in new}
    if unique:
        evidence = [
            f"{a.id} and {b.id}: {a.money()} to {a.customer or a.payment_method}, {b.created - a.created:.0f}s apart"
            for a, b in unique.values()
        ]
        yield _finding(f"{len(unique)} possible duplicate charge(s) within {rules.duplicate_window:g}s", evidence)


def out_of_bounds(charges: Iterable[Charge], rules: Rules) -> Iterator[Problem]:
    bad: list[str] = []
    for c in charges:
        bounds = rules.amount_bounds.get(c.currency)
        if c.status in MONEY_MOVING and bounds and not bounds[0] <= c.amount <= bounds[1]:
            bad.append(f"{c.id}: {c.money()} outside [{bounds[0]}, {bounds[1]}]")
    if bad:
        yield _finding(f"{len(bad)} charge(s) outside the configured amount bounds", bad)


def wrong_currency(charges: Iterable[Charge], rules: Rules) -> Iterator[Problem]:
    if not rules.currencies:
        return
    allowed = {c.lower() for c in rules.currencies}
    bad = [f"{c.id}: {c.money()}" for c in charges if c.currency not in allowed]
    if bad:
        yield _finding(f"{len(bad)} charge(s) in an unexpected currency (expected {', '.join(sorted(allowed))})", bad)


def failed_ratio(charges: Sequence[Charge], rules: Rules) -> Iterator[Problem]:
    limit = rules.max_failed_ratio
    if limit is None or len(charges) < max(1, rules.min_charges):
        return
    failed = [c for c in charges if c.status == "failed"]
    ratio = len(failed) / len(charges)
    if ratio > limit.value:
        yield _finding(
            f"{len(failed)} of {len(charges)} charges failed ({ratio:.0%}, limit {limit})",
            (c.id for c in failed),
        )


def over_count(what: str, ids: Sequence[str], limit: int | None, span: str) -> Iterator[Problem]:
    """`span` completes the sentence: "in the last 1h", "by a webhook event"."""
    if limit is not None and len(ids) > limit:
        yield _finding(f"{len(ids)} {what} {span} (limit {limit})", ids)


def failed_payouts(payouts: Iterable[Mapping[str, Any]]) -> Iterator[Problem]:
    bad = [
        f"{p.get('id')}: {p.get('amount')} {p.get('currency')} ({p.get('failure_code') or 'no failure code'})"
        for p in payouts
        if p.get("status") == "failed"
    ]
    if bad:
        yield _finding(f"{len(bad)} payout(s) failed", bad)


def judge_new_charges(charges: Sequence[Charge], rules: Rules, new: set[str]) -> list[Problem]:
    """The per-charge rules over a window; only charges in `new` can raise a finding."""
    fresh = [c for c in charges if c.id in new]
    return [*duplicates(charges, rules, new), *out_of_bounds(fresh, rules), *wrong_currency(fresh, rules)]


def problems_from_event(event: Mapping[str, Any], rules: Rules) -> list[Problem]:
    """A verified Stripe event's findings (a pure function; the receiver stores them)."""
    kind = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return []
    event_id = str(event.get("id", "?"))
    if kind == "payout.failed":
        return list(failed_payouts([{**obj, "status": "failed"}])) if rules.check_payouts else []
    if kind == "charge.dispute.created":
        ids = [f"{obj.get('id')} on {obj.get('charge')} ({event_id})"]
        return list(over_count("dispute(s) opened", ids, rules.max_disputes, "by a webhook event"))
    if kind == "charge.refunded":
        ids = [f"{obj.get('id')} ({event_id})"]
        return list(over_count("refund(s)", ids, rules.max_refunds, "by a webhook event"))
    if kind == "charge.failed":
        limit = rules.max_failed_ratio
        if limit is not None and limit.value == 0:
            return [_finding("a charge failed (max_failed_ratio is 0)", [f"{obj.get('id')} ({event_id})"])]
        return []
    charge = Charge.from_json(obj) if str(kind).startswith("charge.") else None
    if charge is None:
        return []
    return [*out_of_bounds([charge], rules), *wrong_currency([charge], rules)]
