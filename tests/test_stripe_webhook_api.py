"""Stripe webhooks through the running API: verified events feed financial_error; replays and forgeries don't."""

from __future__ import annotations

import time

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.api import create_app
from monitor.clock import FakeClock
from monitor.stripe_webhooks import sign

SECRET = "whsec_test_0123456789abcdef"
CONFIG = f"""
version: 1
people: {{felix: {{name: Felix}}}}
conditions:
  financial_error: {{first_responders: [felix]}}
sites:
  - name: acme-platform
    checks:
      - type: stripe
        api_key: rk_test_0123456789
        api_base: http://127.0.0.1:1
        webhook_secret: {SECRET}
        max_disputes: 0
"""


def dispute_event(event_id: str = "evt_1") -> bytes:
    dispute = {"id": "dp_1", "object": "dispute", "charge": "ch_1", "amount": 5000, "currency": "usd"}
    return orjson.dumps(
        {"id": event_id, "object": "event", "type": "charge.dispute.created", "data": {"object": dispute}}
    )


@pytest.fixture
async def client(engine_for, config_from):
    engine = await engine_for(config_from(CONFIG), FakeClock())
    c = TestClient(TestServer(create_app(engine)))
    await c.start_server()
    yield c, engine
    await c.close()


async def post(client: TestClient, body: bytes, secret: str = SECRET, t: int | None = None):
    header = sign(body, secret, int(time.time()) if t is None else t)
    return await client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header})


async def test_a_verified_dispute_opens_a_financial_error_incident(client) -> None:
    """A signed charge.dispute.created over the limit opens financial_error SEV-1 and halts."""
    c, engine = client
    resp = await post(c, dispute_event())
    assert resp.status == 200
    (incident,) = engine.open_incidents()
    assert (incident.condition, incident.severity.value, incident.site) == ("financial_error", "SEV-1", "acme-platform")
    assert engine.halt.halted
    assert engine.views["acme-platform/stripe"].last is None, "an event is not a probe"


async def test_replay_and_forgery_are_refused_and_change_nothing(client) -> None:
    """The same event id twice: 400; a wrong secret or a stale timestamp: 400 and no incident."""
    c, engine = client
    assert (await post(c, dispute_event("evt_forged"), secret="whsec_wrong")).status == 400
    assert (await post(c, dispute_event("evt_old"), t=int(time.time()) - 3600)).status == 400
    assert engine.open_incidents() == []
    assert (await post(c, dispute_event("evt_2"))).status == 200
    assert (await post(c, dispute_event("evt_2"))).status == 400
    assert len(await engine.store.list_incidents("all")) == 1
