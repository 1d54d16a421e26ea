"""The outbox through the Engine against real stand-ins: once, in order, retried, never lost."""

from __future__ import annotations

import hashlib
import hmac
import time

from monitor.clock import FakeClock
from tests.oncall.conftest import SECRETS, Receiver, Reply, abandon, fail_site, flush, recover_site, rows


def events(receiver: Receiver, kind: str, recipient: str | None = None) -> list[str]:
    bodies = receiver.accepted(kind)
    if kind == "hook":
        return [b["event"] for b in bodies if recipient is None or b["recipient"] == recipient]
    if kind == "pd":
        return [b["event_action"] for b in bodies]
    return [b["text"] for b in bodies]


async def test_every_page_arrives_once_in_order_with_the_right_fields(start_engine, oncall_config, receiver) -> None:
    """Open, ack, resolve: each person hears each event exactly once, in order, on every channel."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    iid = await fail_site(engine, "acme-shop")
    await flush(engine)
    await engine.acknowledge(iid, "owen")
    await flush(engine)
    await clock.advance(60)
    await recover_site(engine, "acme-shop")
    await flush(engine)
    await flush(engine)

    assert events(receiver, "hook", "owen") == ["opened", "resolved"]
    assert events(receiver, "pd") == ["trigger", "acknowledge", "resolve"]
    assert len(receiver.accepted("slack")) == 2
    assert all(i.status == "delivered" and i.attempts == 1 for i in await rows(engine))

    opened = receiver.attempts("hook")[0]
    body = opened.json
    assert body["recipient"] == "owen"
    assert body["recipient_name"] == "Owen"
    assert body["incident"]["id"] == iid
    assert body["incident"]["paged"] == ["owen", "derek"]
    assert {"site", "check", "condition", "severity", "status", "halt", "opened_at", "timeline"} <= set(
        body["incident"]
    )
    assert opened.headers["Idempotency-Key"] == f"{iid}:opened:0:owen:hook"
    stamp = opened.headers["X-Monitor-Timestamp"]
    mac = hmac.new(SECRETS["HOOK_SECRET"].encode(), stamp.encode() + b"." + opened.raw, hashlib.sha256).hexdigest()
    assert opened.headers["X-Monitor-Signature"] == f"sha256={mac}"

    trigger = receiver.accepted("pd")[0]
    assert trigger["routing_key"] == SECRETS["PD_KEY"]
    assert trigger["dedup_key"] == iid
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "monitor:acme-shop"
    assert trigger["client_url"] == f"https://status.example/api/v1/incidents/{iid}"

    slack = receiver.accepted("slack")[0]
    text = str(slack["blocks"])
    assert "SEV-1" in slack["text"]
    assert "acme-shop" in text
    assert "production_down" in text
    assert "@owen" in text
    assert f"https://status.example/api/v1/incidents/{iid}" in text
    assert "https://status.example/" in text
    assert engine.telemetry.notifications[("pager", "delivered")] == 3


async def test_429_waits_exactly_retry_after(start_engine, oncall_config, receiver) -> None:
    """A 429 with Retry-After: 30 is retried after 30 s, not before, and then delivered once."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    receiver.fail("pd", Reply(429, {"Retry-After": "30"}, '{"status": "throttled"}'))
    await fail_site(engine, "acme-shop")
    await flush(engine)
    (row,) = [r for r in await rows(engine) if r.channel == "pager"]
    assert row.status == "pending"
    assert row.attempts == 1
    assert row.next_attempt_at == clock.now() + 30
    await clock.advance(29)
    await flush(engine)
    assert len(receiver.attempts("pd")) == 1
    await clock.advance(2)
    await flush(engine)
    assert [s.status for s in receiver.attempts("pd")] == [429, 202]
    assert engine.telemetry.notifications[("pager", "retry")] == 1
    assert engine.telemetry.notifications[("pager", "delivered")] == 1


async def test_5xx_backs_off_exponentially_then_delivers(start_engine, oncall_config, receiver) -> None:
    """Two 500s: retried after ~1 s then ~2 s (plus jitter), then delivered exactly once."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    receiver.fail("hook", Reply(500), Reply(503))
    await fail_site(engine, "acme-shop")
    await flush(engine)
    (row,) = [r for r in await rows(engine) if r.channel == "hook"]
    assert 1 <= row.next_attempt_at - clock.now() <= 2
    assert row.last_error.startswith("http_500")
    await clock.advance(2)
    await flush(engine)
    (row,) = [r for r in await rows(engine) if r.channel == "hook"]
    assert 2 <= row.next_attempt_at - clock.now() <= 3
    assert row.attempts == 2
    await clock.advance(3)
    await flush(engine)
    assert [s.status for s in receiver.attempts("hook")] == [500, 503, 200]
    assert len(receiver.accepted("hook")) == 1


async def test_400_fails_for_good_with_the_reason(start_engine, oncall_config, receiver) -> None:
    """A 400 is not retried; the row is failed with the receiver's reason and counted as failed."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    receiver.fail("slack", Reply(400, body="invalid_blocks"))
    await fail_site(engine, "acme-shop")
    await flush(engine)
    await clock.advance(3600)
    await flush(engine)
    (row,) = [r for r in await rows(engine) if r.channel == "slack"]
    assert row.status == "failed"
    assert row.attempts == 1
    assert row.last_error == "http_400: invalid_blocks"
    assert len(receiver.attempts("slack")) == 1
    assert engine.telemetry.notifications[("slack", "failed")] == 1
    assert engine.telemetry.queue_depth == 0


async def test_a_channel_that_is_down_delays_and_then_drains_in_order(start_engine, oncall_config, receiver) -> None:
    """While the receiver is down pages wait (resolved never overtakes opened); back up, all go once."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    await receiver.stop()
    iid = await fail_site(engine, "acme-shop")
    await flush(engine)
    await clock.advance(2)
    await recover_site(engine, "acme-shop")
    for _ in range(5):
        await clock.advance(61)
        await flush(engine)
    pending = [r for r in await rows(engine) if r.status == "pending"]
    assert len(pending) == 6
    assert engine.telemetry.queue_depth == 6
    assert all(r.last_error.startswith("connection") for r in pending if r.attempts)
    await receiver.start()
    await clock.advance(61)
    await flush(engine)
    await flush(engine)
    assert events(receiver, "hook", "owen") == ["opened", "resolved"]
    assert events(receiver, "pd") == ["trigger", "resolve"]
    assert {b["dedup_key"] for b in receiver.accepted("pd")} == {iid}
    assert engine.telemetry.queue_depth == 0


async def test_kill_9_then_restart_delivers_each_page_once(start_engine, oncall_config, receiver) -> None:
    """Rows written before a kill -9 are delivered by the next engine on the same file, once."""
    clock = FakeClock()
    config = oncall_config()
    await receiver.stop()
    first = await start_engine(config, clock)
    iid = await fail_site(first, "acme-shop")
    await flush(first)
    await abandon(first)
    await receiver.start()
    second = await start_engine(config, clock)
    await clock.advance(5)  # the backoff the first engine recorded still holds
    await flush(second)
    assert [b["incident"]["id"] for b in receiver.accepted("hook")] == [iid]
    assert len(receiver.accepted("pd")) == 1
    assert len(receiver.accepted("slack")) == 1
    await second.stop()
    third = await start_engine(config, clock)  # a clean restart sends nothing again
    await clock.advance(60)
    await flush(third)
    assert len(receiver.seen) == 3


async def test_stop_flushes_due_pages_within_the_drain_timeout(start_engine, oncall_config, receiver) -> None:
    """stop() (SIGTERM) delivers what is due; a hanging receiver costs at most drain_timeout."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    await fail_site(engine, "globex")
    await engine.stop()
    assert len(receiver.accepted("hook")) == 1
    assert len(receiver.accepted("pd")) == 1

    again = await start_engine(oncall_config(), clock, db="other.db")
    receiver.fail("hook", Reply(200, delay=30))
    await fail_site(again, "initech")
    began = time.monotonic()
    await again.stop()
    assert time.monotonic() - began < 6
