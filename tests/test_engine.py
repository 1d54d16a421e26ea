"""The engine end to end in-process, on a fake clock: results -> incidents -> reports, halt, paging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.clock import FakeClock
from monitor.config import Config
from monitor.engine import Engine
from monitor.incidents.model import Status
from monitor.results import FailureKind, ProbeResult, Problem

CONFIG = """
version: 1
defaults: {interval: 10s, timeout: 5s, failure_threshold: 3, success_threshold: 2}
people:
  owen: {name: Owen}
  derek: {name: Derek}
  victor: {name: Victor}
  sam: {name: Sam}
  marcus: {name: Marcus}
  jonny: {name: Jonny}
  luna: {name: Luna}
conditions:
  production_down: {first_responders: [owen, derek], escalation: [marcus, jonny]}
  security_breach: {first_responders: [victor, sam], escalation: [marcus, jonny, luna]}
  financial_error: {first_responders: [owen], escalation: [marcus, jonny], escalate_immediately: true}
sites:
  - name: acme-shop
    client: acme
    checks:
      - {type: http, url: "https://shop.acme.example/"}
      - {type: http, name: cart, url: "https://shop.acme.example/cart"}
  - name: globex
    checks:
      - {type: http, url: "https://globex.example/"}
"""

DOWN = ProbeResult(
    duration=0.01,
    status_code=503,
    problems=(
        Problem(
            condition="production_down", kind=FailureKind.BAD_STATUS, summary="https://shop.acme.example/ answered 503"
        ),
    ),
)
UP = ProbeResult(duration=0.01, status_code=200)


def breach(name: str = "sk_live_…#1a2b3c4d") -> ProbeResult:
    return ProbeResult(
        duration=0.01,
        problems=(
            Problem(
                condition="security_breach", kind=FailureKind.ANOMALY, summary=f"serves a Stripe secret key {name}"
            ),
        ),
    )


@pytest.fixture
def config(config_from) -> Config:
    return config_from(CONFIG)


async def feed(engine: Engine, clock: FakeClock, results: list[ProbeResult], check: int = 0) -> None:
    for result in results:
        await engine.handle_result(engine.config.checks[check], result)
        await clock.advance(10)


async def test_threshold_opens_one_sev1_incident_and_halts(engine_for, config: Config, tmp_path: Path) -> None:
    """Three 503s: one SEV-1 production_down incident, halted, report + chatroom + HALT file written."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN, DOWN])
    assert engine.open_incidents() == []
    await feed(engine, clock, [DOWN])
    (incident,) = engine.open_incidents()
    assert (incident.condition, incident.severity.value, incident.status) == (
        "production_down",
        "SEV-1",
        Status.INVESTIGATING,
    )
    assert incident.id.endswith("-SEV1-001")
    assert incident.paged == ("owen", "derek")
    assert engine.halt.halted and engine.halt.conditions == ("production_down",)
    halt = json.loads((tmp_path / ".tmp" / "HALT").read_text())
    assert halt["incidents"] == [incident.id] and halt["conditions"] == ["production_down"]
    assert (tmp_path / ".tmp" / "incidents" / f"{incident.id}.md").exists()
    assert f"[TASK_ID]: {incident.id}" in (tmp_path / "chatroom.md").read_text()


async def test_further_failures_join_instead_of_opening_again(engine_for, config: Config) -> None:
    """Failures of the same (site, condition) from any check join the open incident."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN] * 6)
    await feed(engine, clock, [DOWN] * 3, check=1)
    (incident,) = engine.open_incidents()
    assert incident.checks == ("http", "cart")
    assert len(await engine.store.list_incidents("all")) == 1


async def test_recovery_auto_resolves_and_clears_the_halt(engine_for, config: Config, tmp_path: Path) -> None:
    """Two passing probes resolve production_down by itself; the post-incident section is written."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN] * 3 + [UP, UP])
    assert engine.open_incidents() == [] and not engine.halt.halted
    assert not (tmp_path / ".tmp" / "HALT").exists()
    (incident,) = await engine.store.list_incidents("resolved")
    assert incident.resolved_by == "monitor"
    report = (tmp_path / ".tmp" / "incidents" / f"{incident.id}.md").read_text()
    assert "## Post-incident" in report and "- **Status**: RESOLVED" in report
    assert (tmp_path / "chatroom.md").read_text().count(f"[TASK_ID]: {incident.id}") == 2


async def test_incident_stays_open_while_another_check_still_fails(engine_for, config: Config) -> None:
    """One check recovering is not enough when another check of the site still shows the condition."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN] * 3)
    await feed(engine, clock, [DOWN] * 3, check=1)
    await feed(engine, clock, [UP, UP])
    assert len(engine.open_incidents()) == 1
    await feed(engine, clock, [UP, UP], check=1)
    assert engine.open_incidents() == []


async def test_security_breach_waits_for_a_person(engine_for, config: Config) -> None:
    """A leaked key that stops showing is still leaked: no auto-resolve; a responder resolves it."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [breach()])
    (incident,) = engine.open_incidents()
    assert incident.condition == "security_breach" and incident.paged == ("victor", "sam")
    await feed(engine, clock, [UP] * 5)
    (incident,) = engine.open_incidents()
    assert incident.timeline[-1].event == "waiting"
    resolved = await engine.resolve(incident.id, "victor", "key rotated")
    assert resolved.status is Status.RESOLVED and not engine.halt.halted


async def test_unacknowledged_sev1_escalates_along_the_chain(engine_for, config: Config) -> None:
    """After 5 minutes unacknowledged marcus is paged, after 5 more jonny; an ack stops it."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN] * 3)
    (incident,) = engine.open_incidents()
    await clock.advance(4 * 60)
    await engine.tick()
    assert engine.open[incident.id].paged == ("owen", "derek")
    await clock.advance(60)
    await engine.tick()
    assert engine.open[incident.id].paged == ("owen", "derek", "marcus")
    await engine.acknowledge(incident.id, "marcus")
    await clock.advance(3600)
    await engine.tick()
    acked = engine.open[incident.id]
    assert acked.paged == ("owen", "derek", "marcus") and acked.status is Status.MITIGATING


async def test_escalate_immediately_pages_the_whole_chain_at_open(engine_for, config: Config) -> None:
    """financial_error pages first responders and the whole chain at once."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    money = ProbeResult(
        duration=0.01,
        problems=(
            Problem(condition="financial_error", kind=FailureKind.ANOMALY, summary="duplicate charge ch_1, ch_2"),
        ),
    )
    await feed(engine, clock, [money])
    (incident,) = engine.open_incidents()
    assert incident.paged == ("owen", "marcus", "jonny")


async def test_restart_keeps_the_open_incident_and_the_halt(engine_for, config: Config, tmp_path: Path) -> None:
    """A new engine on the same store: same open incident, halt still active, no second incident."""
    clock = FakeClock()
    first = await engine_for(config, clock)
    await feed(first, clock, [DOWN] * 3)
    (incident,) = first.open_incidents()
    # abandon `first` without stop(), as kill -9 would
    second = await engine_for(config, clock)
    assert [i.id for i in second.open_incidents()] == [incident.id]
    assert second.halt.halted
    await feed(second, clock, [DOWN] * 4)
    assert len(await second.store.list_incidents("all")) == 1
    assert (tmp_path / "chatroom.md").read_text().count(f"[TASK_ID]: {incident.id}") == 1


async def test_incident_numbers_count_up_per_day(engine_for, config: Config) -> None:
    """Two incidents on one day get NNN 001 and 002."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN] * 3)
    await feed(engine, clock, [DOWN] * 3, check=2)
    ids = sorted(i.id for i in engine.open_incidents())
    assert [i[-3:] for i in ids] == ["001", "002"]


async def test_owner_override_lifts_the_halt_until_it_expires(engine_for, config: Config, tmp_path: Path) -> None:
    """lift_halt clears the halt for the incidents open now; it comes back when the override expires."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN] * 3)
    (incident,) = engine.open_incidents()
    await engine.lift_halt(reason="hotfix must ship", until=clock.now() + 600, by="jonny")
    assert not engine.halt.halted and engine.halt.lifted == (incident.id,)
    assert not (tmp_path / ".tmp" / "HALT").exists()
    assert engine.open[incident.id].timeline[-1].event == "override"
    await clock.advance(601)
    await engine.tick()
    assert engine.halt.halted


async def test_override_does_not_cover_a_new_halt_incident(engine_for, config: Config) -> None:
    """A halt condition that trips after the override halts again."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    await feed(engine, clock, [DOWN] * 3)
    await engine.lift_halt(reason="known", until=clock.now() + 3600, by="jonny")
    await feed(engine, clock, [breach()])
    assert engine.halt.halted and engine.halt.conditions == ("security_breach",)


async def test_a_probe_that_raises_is_a_classified_result(engine_for, config: Config) -> None:
    """A bug inside a probe never unwinds the engine: it becomes an `error` result."""
    clock = FakeClock()
    engine = await engine_for(config, clock)
    check = engine.config.checks[0]
    object.__setattr__(check, "params", None)  # make the http probe blow up on attribute access
    result = await engine.run_probe(check)
    assert result.problems[0].kind is FailureKind.ERROR
