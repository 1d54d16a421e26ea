"""Escalation until acknowledged, reminders and resolution notices, on a FakeClock via engine.tick()."""

from __future__ import annotations

from dataclasses import replace

from monitor.clock import FakeClock
from monitor.engine import Engine
from monitor.incidents import lifecycle
from monitor.notify import planner
from monitor.results import FailureKind, Problem, Severity
from tests.oncall.conftest import fail_site, flush, rows


async def at(engine: Engine, clock: FakeClock, seconds: float) -> None:
    """Move the clock by `seconds` and run one engine tick."""
    await clock.advance(seconds)
    await engine.tick()


async def pages(engine: Engine, event: str) -> list[str]:
    return [r.recipient for r in await rows(engine) if r.event == event and r.channel in ("hook", "pager")]


async def test_sev1_escalates_after_5_minutes_then_to_the_next(start_engine, oncall_config, receiver) -> None:
    """Unacknowledged SEV-1: marcus at 5m (not before), jonny at 10m, then the chain is done."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    iid = await fail_site(engine, "acme-shop")
    await at(engine, clock, 299)
    assert await pages(engine, "escalated") == []
    await at(engine, clock, 1)
    assert await pages(engine, "escalated") == ["marcus"]
    await at(engine, clock, 299)
    assert await pages(engine, "escalated") == ["marcus"]
    await at(engine, clock, 1)
    assert await pages(engine, "escalated") == ["marcus", "jonny"]
    await at(engine, clock, 3600)
    assert await pages(engine, "escalated") == ["marcus", "jonny"]
    assert engine.open[iid].paged == ("owen", "derek", "marcus", "jonny")
    await flush(engine)
    hook = [(b["recipient"], b["event"]) for b in receiver.accepted("hook")]
    assert hook == [("owen", "opened"), ("marcus", "escalated")]
    assert [a["labels"]["incident"] for a in receiver.accepted("am")[0]] == [iid]


async def test_acknowledgement_stops_escalation_and_tells_the_others(start_engine, oncall_config) -> None:
    """An ack at 3m: nobody is escalated to, ever; the other paged person hears about the ack."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    iid = await fail_site(engine, "acme-shop")
    await at(engine, clock, 180)
    await engine.acknowledge(iid, "derek")
    for _ in range(4):
        await at(engine, clock, 3600)
    assert await pages(engine, "escalated") == []
    assert [r.recipient for r in await rows(engine) if r.event == "acknowledged"] == ["owen", "owen"]


async def test_escalate_after_and_reminders_follow_the_condition_policy(start_engine, oncall_config) -> None:
    """api_failure: escalate_after 10m overrides SEV-2's 30m; remind_every 1h reminds everyone paged."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    await fail_site(engine, "globex", "api_failure")
    await at(engine, clock, 599)
    assert await pages(engine, "escalated") == []
    await at(engine, clock, 1)
    assert await pages(engine, "escalated") == ["marcus"]
    await at(engine, clock, 3000)  # 1h after opening
    assert sorted(await pages(engine, "reminder")) == ["marcus", "owen"]
    await at(engine, clock, 3600)
    reminders = [r.key for r in await rows(engine) if r.event == "reminder"]
    assert len(reminders) == len(set(reminders)) == 6  # owen (hook, slack) + marcus (hook), twice


async def test_escalate_immediately_pages_the_whole_chain_once(start_engine, oncall_config) -> None:
    """financial_error pages felix, marcus and jonny at open, and nobody again later."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    iid = await fail_site(engine, "hooli", "financial_error")
    assert engine.open[iid].paged == ("felix", "marcus", "jonny")
    await at(engine, clock, 3600)
    assert await pages(engine, "escalated") == []
    assert sorted(await pages(engine, "opened")) == ["felix", "jonny", "marcus"]


async def test_resolution_notifies_everyone_who_was_paged(start_engine, oncall_config, receiver) -> None:
    """Resolved after one escalation: owen, derek and marcus hear it; jonny, never paged, does not."""
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    iid = await fail_site(engine, "acme-shop")
    await at(engine, clock, 300)
    await engine.resolve(iid, "marcus", "rolled back")
    assert sorted(await pages(engine, "resolved")) == ["derek", "marcus", "owen"]
    await flush(engine)
    resolved = [b for b in receiver.accepted("hook") if b["event"] == "resolved"]
    assert {b["recipient"] for b in resolved} == {"owen", "marcus"}
    assert all(b["incident"]["status"] == "RESOLVED" for b in resolved)


async def test_no_first_responder_pages_the_head_of_the_chain_at_once(oncall_config) -> None:
    """A condition with only an escalation chain pages its first person at open, not after a deadline."""
    config = oncall_config()
    policy = replace(config.conditions["production_down"], first_responders=())
    incident = _incident(policy, Severity.SEV1)
    paged, items = planner.on_open(incident, policy, config, 0.0)
    assert paged.paged == ("marcus",)
    assert paged.escalation_step == 1
    assert paged.next_escalation_at == 300.0
    assert {i.recipient for i in items} == {"marcus"}


async def test_sev4_never_pages_until_its_severity_is_raised(oncall_config) -> None:
    """A SEV-4 opens unpaged; once raised to SEV-2 the next tick pages the first responders."""
    config = oncall_config()
    policy = config.conditions["degraded"]
    incident, items = planner.on_open(_incident(policy, Severity.SEV4), policy, config, 0.0)
    assert items == []
    assert planner.on_tick(incident, policy, config, 10.0) is None
    raised = replace(incident, severity=Severity.SEV2)
    plan = planner.on_tick(raised, policy, config, 20.0)
    assert plan is not None
    assert plan[0].paged == ("owen",)
    assert plan[0].next_escalation_at == 20.0 + 1800
    assert planner.on_tick(plan[0], policy, config, 30.0) is None


def test_pages_carry_the_incident_as_it_is_after_the_page(oncall_config) -> None:
    """The `incident` in an opened page already lists who was paged (SPEC §6 view)."""
    config = oncall_config()
    policy = config.conditions["production_down"]
    _, items = planner.on_open(_incident(policy, Severity.SEV1), policy, config, 0.0)
    assert all(i.payload["incident"]["paged"] == ["owen", "derek"] for i in items)


def _incident(policy, severity):  # type: ignore[no-untyped-def]
    problem = Problem(condition=policy.name, kind=FailureKind.BAD_STATUS, summary="answered 503")
    return lifecycle.open_incident(
        incident_id="INCIDENT-20251124-SEV1-001",
        site="acme-shop",
        client="acme",
        check="http",
        policy=policy,
        severity=severity,
        problem=problem,
        streak=1,
        now=0.0,
    )
