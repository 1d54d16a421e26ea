"""Storm control: many incidents at once reach a person as one grouped page per window."""

from __future__ import annotations

from monitor.clock import FakeClock
from monitor.notify.outbox import StormWindow, plan_storm
from monitor.store import OutboxItem
from tests.oncall.conftest import SITES, fail_site, flush, rows


def item(n: int) -> OutboxItem:
    return OutboxItem(
        key=f"I{n}:opened:0:owen:hook",
        channel="hook",
        recipient="owen",
        event="opened",
        incident_ids=(f"I{n}",),
        payload={"incident": {"id": f"I{n}"}},
        created_at=float(n),
        next_attempt_at=float(n),
    )


def test_below_the_threshold_pages_go_out_one_by_one() -> None:
    """Two incidents in a window with threshold 3: two ordinary pages."""
    plan, window = plan_storm([item(1)], None, 0.0, 30.0, 3)
    assert plan.send == [item(1)]
    plan, window = plan_storm([item(2)], window, 5.0, 30.0, 3)
    assert plan.send == [item(2)]
    assert window.pages == 2


def test_the_threshold_page_waits_for_the_window_end_and_later_ones_join_it() -> None:
    """The 3rd and 4th incident in a window are held to its end, then go out together."""
    window = StormWindow(0.0, pages=2)
    plan, window = plan_storm([item(3)], window, 10.0, 30.0, 3)
    assert plan.hold == [item(3)]
    assert plan.hold_until == 30.0
    plan, window = plan_storm([item(4)], window, 20.0, 30.0, 3)
    assert plan.hold == [item(4)]
    assert plan.hold_until == 30.0
    plan, window = plan_storm([item(3), item(4)], window, 30.0, 30.0, 3)
    assert plan.group == [item(3), item(4)]
    assert window.storm


def test_a_burst_at_once_is_one_grouped_page_and_a_quiet_window_ends_the_storm() -> None:
    """Five at once: one grouped page now; after a quiet window single pages are back."""
    burst = [item(n) for n in range(5)]
    plan, window = plan_storm(burst, None, 0.0, 30.0, 3)
    assert plan.group == burst
    plan, window = plan_storm([item(9)], window, 100.0, 30.0, 3)
    assert plan.send == [item(9)]
    assert not window.storm


def test_threshold_zero_turns_grouping_off() -> None:
    """group_threshold 0: every page is its own."""
    burst = [item(n) for n in range(5)]
    plan, _ = plan_storm(burst, None, 0.0, 30.0, 0)
    assert plan.send == burst


async def test_six_sites_down_at_once_page_each_person_once(start_engine, oncall_config, receiver) -> None:
    """Six incidents in one burst: owen gets one `grouped` webhook listing all six; incidents stay separate."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    assert engine.outbox is not None
    engine.on_change.remove(engine.outbox.wake)  # let the burst build up, as within one worker pass
    ids = [await fail_site(engine, site) for site in SITES]
    await flush(engine)
    assert len(engine.open) == 6
    hook = receiver.accepted("hook")
    assert [b["event"] for b in hook] == ["grouped"]
    assert hook[0]["recipient"] == "owen"
    assert [i["id"] for i in hook[0]["incidents"]] == ids
    assert receiver.attempts("hook")[0].headers["Idempotency-Key"].startswith("grouped:owen:hook:")
    slack = receiver.accepted("slack")
    assert len(slack) == 1
    assert "6 incidents" in slack[0]["text"]
    assert sorted(b["dedup_key"] for b in receiver.accepted("pd")) == sorted(ids)  # one PD alert per incident
    members = [r for r in await rows(engine) if r.event == "opened" and r.channel == "hook"]
    assert all(r.status == "delivered" and r.payload["grouped_into"].startswith("grouped:") for r in members)
    await flush(engine)
    assert len(receiver.accepted("hook")) == 1


async def test_a_trickle_past_the_threshold_is_grouped_at_the_window_end(start_engine, oncall_config, receiver) -> None:
    """Incidents opening one by one: 2 single pages, then the rest of the window as one grouped page."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    ids = []
    for site in SITES[:5]:
        ids.append(await fail_site(engine, site))
        await flush(engine)
        await clock.advance(5)
    assert [b["event"] for b in receiver.accepted("hook")] == ["opened", "opened"]
    await clock.advance(10)  # 30 s after the first page
    await flush(engine)
    hook = receiver.accepted("hook")
    assert [b["event"] for b in hook] == ["opened", "opened", "grouped"]
    assert [i["id"] for i in hook[2]["incidents"]] == ids[2:]


async def test_sigterm_sends_pages_held_for_a_storm_window(start_engine, oncall_config, receiver) -> None:
    """A page waiting for the storm window's end is not left behind by a shutdown: stop() sends it."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    for site in SITES[:3]:
        await fail_site(engine, site)
        await flush(engine)
        await clock.advance(5)
    assert [b["event"] for b in receiver.accepted("hook")] == ["opened", "opened"]  # the third is held
    await engine.stop()
    assert [b["event"] for b in receiver.accepted("hook")] == ["opened", "opened", "opened"]
