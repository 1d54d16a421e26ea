"""type: stripe against the fake Stripe API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from monitor.clock import FakeClock
from monitor.fakes.stripe import FakeStripe
from monitor.probes import ProbeContext
from monitor.probes._platform import Fraction
from monitor.probes.stripe import StripeCheck, probe_stripe
from monitor.redact import Secret
from monitor.results import FailureKind

MakeCtx = Callable[..., ProbeContext]
KEY = "rk_test_fakeRestrictedKey000000000000"


def check(fake: FakeStripe, **kw: object) -> StripeCheck:
    base = StripeCheck(api_key=Secret(KEY), api_base=fake.url)  # type: ignore[arg-type]
    return replace(base, **kw)  # type: ignore[arg-type]


def conditions(result: object) -> list[str]:
    return [p.condition for p in result.problems]  # type: ignore[attr-defined]


async def test_quiet_account_passes(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """Ordinary charges in the window pass and are counted in detail."""
    for i in range(3):
        stripe.add_charge(1000 + i, customer=f"cus_{i}", payment_method=f"pm_{i}")
    result = await probe_stripe(check(stripe), make_ctx())
    assert result.ok, result.problems
    assert "3 charges" in result.detail


async def test_duplicate_charge_is_financial_error_once(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A second identical charge within duplicate_window is reported once, naming both ids."""
    first = stripe.add_charge(4999)
    second = stripe.add_duplicate(first, after=20)
    result = await probe_stripe(check(stripe), make_ctx())
    (problem,) = result.problems
    assert problem.condition == "financial_error"
    assert problem.kind is FailureKind.ANOMALY
    assert first["id"] in problem.evidence[0]
    assert second["id"] in problem.evidence[0]
    again = await probe_stripe(check(stripe), make_ctx())
    assert again.ok, "a charge is judged once"


async def test_judged_charges_survive_a_restart(stripe: FakeStripe, make_ctx: MakeCtx, state: object) -> None:
    """A new probe context on the same state (a restart) does not report old findings again."""
    stripe.add_duplicate(stripe.add_charge(4999))
    assert not (await probe_stripe(check(stripe), make_ctx())).ok
    assert (await probe_stripe(check(stripe), make_ctx(use_state=state))).ok


async def test_charges_apart_are_not_duplicates(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """The same amount to the same customer outside duplicate_window is fine."""
    first = stripe.add_charge(4999, age=1000)
    stripe.add_duplicate(first, after=600)
    assert (await probe_stripe(check(stripe), make_ctx())).ok


async def test_amount_out_of_bounds(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A charge above the currency's upper bound is a financial error naming the charge."""
    big = stripe.add_charge(900_000)
    result = await probe_stripe(check(stripe, amount_bounds={"usd": (50, 500_000)}), make_ctx())
    (problem,) = result.problems
    assert problem.condition == "financial_error"
    assert big["id"] in problem.evidence[0]


async def test_unexpected_currency(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A charge in a currency not listed is a financial error."""
    odd = stripe.add_charge(1000, "jpy")
    (problem,) = (await probe_stripe(check(stripe, currencies=("usd", "eur")), make_ctx())).problems
    assert "currency" in problem.summary
    assert odd["id"] in problem.evidence[0]


async def test_failed_ratio(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """More failed charges than max_failed_ratio (with enough charges) is a financial error."""
    for i in range(6):
        stripe.add_charge(1000, customer=f"cus_{i}", payment_method=f"pm_{i}", status="failed")
    for i in range(4):
        stripe.add_charge(1000, customer=f"cus_ok{i}", payment_method=f"pm_ok{i}")
    rules = {"max_failed_ratio": Fraction(0.3), "min_charges": 10}
    (problem,) = (await probe_stripe(check(stripe, **rules), make_ctx())).problems
    assert "6 of 10 charges failed" in problem.summary


async def test_refund_and_dispute_limits(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """Refunds and disputes over their limits are findings naming the ids."""
    c = stripe.add_charge(1000)
    refunds = [stripe.add_refund(c) for _ in range(3)]
    dispute = stripe.add_dispute(c)
    result = await probe_stripe(check(stripe, max_refunds=2, max_disputes=0), make_ctx())
    assert conditions(result) == ["financial_error", "financial_error"]
    assert {r["id"] for r in refunds} <= set(result.problems[0].evidence)
    assert dispute["id"] in result.problems[1].evidence


async def test_failed_payout(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A failed payout is a financial error, reported once."""
    payout = stripe.add_payout(50_000, status="failed")
    stripe.add_payout(60_000)
    (problem,) = (await probe_stripe(check(stripe), make_ctx())).problems
    assert payout["id"] in problem.evidence[0]
    assert "account_closed" in problem.evidence[0]
    assert (await probe_stripe(check(stripe), make_ctx())).ok


async def test_pagination_reads_every_page(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A duplicate on the third page of 100 is found through starting_after."""
    first = stripe.add_charge(777, customer="cus_dup", payment_method="pm_dup", age=3000)
    stripe.add_duplicate(first, after=10)
    for i in range(250):
        stripe.add_charge(1000, customer=f"cus_{i}", payment_method=f"pm_{i}", age=10 + i)
    result = await probe_stripe(check(stripe), make_ctx())
    assert conditions(result) == ["financial_error"]
    assert sum("starting_after" in r for r in stripe.requests) == 2


async def test_window_slides(stripe: FakeStripe, make_ctx: MakeCtx, clock: FakeClock) -> None:
    """Charges older than the window are not read."""
    stripe.add_duplicate(stripe.add_charge(4999, age=7200))
    assert (await probe_stripe(check(stripe), make_ctx())).ok


async def test_bad_key_is_auth_failure(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A 401 is api_failure kind auth, without the key in the summary."""
    wrong = "rk_test_wrongKey11111111111111111"
    (problem,) = (await probe_stripe(check(stripe, api_key=Secret(wrong)), make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.AUTH)
    assert wrong not in problem.summary


async def test_rate_limit_backs_off(stripe: FakeStripe, make_ctx: MakeCtx, clock: FakeClock) -> None:
    """A 429 is api_failure; the API is not called again before Retry-After passes."""
    stripe.fail(429, retry_after=120)
    (problem,) = (await probe_stripe(check(stripe), make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.BAD_STATUS)
    assert "429" in problem.summary
    calls = len(stripe.requests)
    await clock.advance(60)
    (still,) = (await probe_stripe(check(stripe), make_ctx())).problems
    assert "rate limiting" in still.summary
    assert len(stripe.requests) == calls
    await clock.advance(61)
    assert (await probe_stripe(check(stripe), make_ctx())).ok


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_is_api_failure(stripe: FakeStripe, make_ctx: MakeCtx, status: int) -> None:
    """A 5xx from Stripe is api_failure bad_status."""
    stripe.fail(status)
    (problem,) = (await probe_stripe(check(stripe), make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.BAD_STATUS)
    assert str(status) in problem.summary


async def test_failure_mid_survey_judges_nothing(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A failed read after the charges leaves them unjudged: the next probe still reports them."""
    stripe.add_duplicate(stripe.add_charge(4999))
    stripe.fail(503, path="/v1/payouts")
    (problem,) = (await probe_stripe(check(stripe), make_ctx())).problems
    assert problem.condition == "api_failure"
    assert conditions(await probe_stripe(check(stripe), make_ctx())) == ["financial_error"]


async def test_invalid_json_is_api_failure(stripe: FakeStripe, make_ctx: MakeCtx) -> None:
    """A 200 that is not JSON is invalid_json."""
    stripe.garble()
    (problem,) = (await probe_stripe(check(stripe), make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.INVALID_JSON)


async def test_unreachable_is_api_failure(dead_url: str, make_ctx: MakeCtx) -> None:
    """Stripe unreachable is api_failure refused."""
    c = StripeCheck(api_key=Secret(KEY), api_base=dead_url)  # type: ignore[arg-type]
    (problem,) = (await probe_stripe(c, make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.REFUSED)
