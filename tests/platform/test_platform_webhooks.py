"""Stripe webhooks: signature, replay protection and the shared financial rules."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest

from monitor.fakes import FakeServer
from monitor.fakes.stripe import FakeStripe
from monitor.probes.stripe import StripeCheck
from monitor.redact import Secret
from monitor.stripe_webhooks import SignatureError, add_routes, problems_from_event, sign, verify_signature

SECRET = "whsec_test_0123456789abcdef"
OTHER = "whsec_test_rotated_9876543210"
RULES = StripeCheck(api_key=Secret("rk_test_x"), max_refunds=0, max_disputes=0, currencies=("usd",))


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def ingest_stripe_event(self, site: str, event: dict[str, Any]) -> None:
        self.events.append((site, event))

    async def seen_event(self, event_id: str) -> bool:
        return any(e["id"] == event_id for _, e in self.events)


class Receiver(FakeServer):
    def __init__(self, sink: Sink) -> None:
        super().__init__()
        add_routes(self.app, sink, {"acme-shop": [SECRET, OTHER], "other-shop": ["whsec_other_site_000000"]})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, Sink]]:
    sink = Sink()
    r = Receiver(sink)
    await r.start()
    yield r, sink
    await r.stop()


def test_verify_accepts_any_v1_and_secret() -> None:
    """Several v1 signatures and several secrets are accepted (rotation)."""
    body = orjson.dumps({"id": "evt_1", "type": "charge.failed"})
    now = int(time.time())
    header = sign(body, OTHER, now) + ",v1=" + "0" * 64
    assert verify_signature(body, header, [SECRET, OTHER], now)["id"] == "evt_1"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("t=1,v1=abc", "timestamp"),
        ("v1=abc", "no timestamp"),
        ("t=NOW", "no v1"),
        ("t=NOW,v1=" + "0" * 64, "no signature"),
    ],
)
def test_verify_refuses(header: str, reason: str) -> None:
    """Stale, unsigned or wrongly signed deliveries raise SignatureError saying why."""
    now = int(time.time())
    with pytest.raises(SignatureError, match=reason):
        verify_signature(b"{}", header.replace("NOW", str(now)), [SECRET], now)


async def test_valid_event_is_ingested_once(receiver: tuple[Receiver, Sink], session: aiohttp.ClientSession) -> None:
    """A signed event reaches the sink for the right site; its replay is a 400 and is not stored."""
    r, sink = receiver
    fake = FakeStripe()
    event = fake.event("charge.refunded", fake.add_charge(1000))
    status, answer = await FakeStripe.send_event(session, f"{r.url}/webhooks/stripe", event, SECRET)
    assert (status, answer["site"]) == (200, "acme-shop")
    status, answer = await FakeStripe.send_event(session, f"{r.url}/webhooks/stripe", event, SECRET)
    assert status == 400
    assert "replay" in answer["error"]["message"]
    assert len(sink.events) == 1


async def test_bad_signature_is_400(receiver: tuple[Receiver, Sink], session: aiohttp.ClientSession) -> None:
    """A wrong secret or a stale timestamp is 400 JSON and nothing is stored."""
    r, sink = receiver
    fake = FakeStripe()
    event = fake.event("payout.failed", fake.add_payout(100, status="failed"))
    status, answer = await FakeStripe.send_event(session, f"{r.url}/webhooks/stripe", event, "whsec_wrong_000000")
    assert status == 400
    assert "error" in answer
    status, _ = await FakeStripe.send_event(session, f"{r.url}/webhooks/stripe", event, SECRET, timestamp=1)
    assert status == 400
    assert sink.events == []


async def test_site_path_only_tries_that_site(receiver: tuple[Receiver, Sink], session: aiohttp.ClientSession) -> None:
    """POST /webhooks/stripe/{site} verifies only with that site's secrets; unknown sites are 404."""
    r, sink = receiver
    fake = FakeStripe()
    event = fake.event("charge.failed", fake.add_charge(100, status="failed"))
    status, _ = await FakeStripe.send_event(session, f"{r.url}/webhooks/stripe/other-shop", event, SECRET)
    assert status == 400
    status, _ = await FakeStripe.send_event(session, f"{r.url}/webhooks/stripe/acme-shop", event, SECRET)
    assert status == 200
    assert sink.events[0][0] == "acme-shop"
    status, _ = await FakeStripe.send_event(session, f"{r.url}/webhooks/stripe/nope", event, SECRET)
    assert status == 404


async def test_non_json_body_is_400(receiver: tuple[Receiver, Sink], session: aiohttp.ClientSession) -> None:
    """A correctly signed body that is not a Stripe event is refused."""
    r, _ = receiver
    body = b"not json"
    headers = {"Stripe-Signature": sign(body, SECRET, int(time.time()))}
    async with session.post(f"{r.url}/webhooks/stripe", data=body, headers=headers) as resp:
        assert resp.status == 400


def test_events_become_financial_problems() -> None:
    """Dispute, refund (limit 0), failed payout and wrong-currency charge events are financial errors."""
    fake = FakeStripe()
    charge = fake.add_charge(1000)
    for kind, obj in [
        ("charge.dispute.created", fake.add_dispute(charge)),
        ("charge.refunded", charge),
        ("payout.failed", fake.add_payout(100, status="failed")),
        ("charge.succeeded", fake.add_charge(1000, "jpy")),
    ]:
        (problem,) = problems_from_event(fake.event(kind, obj), RULES)
        assert problem.condition == "financial_error", kind
        assert obj["id"] in " ".join(problem.evidence)


def test_window_limits_above_zero_wait_for_the_probe() -> None:
    """With max_refunds above 0 a single refund event is not a finding (the probe counts the window)."""
    fake = FakeStripe()
    event = fake.event("charge.refunded", fake.add_charge(1000))
    assert problems_from_event(event, replace(RULES, max_refunds=5)) == []
    assert problems_from_event(fake.event("charge.failed", fake.add_charge(1, status="failed")), RULES) == []


async def test_large_event_body_is_read_whole(receiver: tuple[Receiver, Sink], session: aiohttp.ClientSession) -> None:
    """An event bigger than one network chunk still verifies (the signature covers every byte)."""
    r, sink = receiver
    fake = FakeStripe()
    charge = fake.add_charge(1000)
    charge["metadata"] = {f"k{i}": "v" * 200 for i in range(1000)}
    status, _ = await FakeStripe.send_event(
        session, f"{r.url}/webhooks/stripe", fake.event("charge.refunded", charge), SECRET
    )
    assert status == 200
    assert len(sink.events) == 1
