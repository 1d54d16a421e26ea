"""Flapping: a check that swings up and down keeps one incident open (with a note) instead of paging per swing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monitor.clock import FakeClock
from monitor.config import Check, Config, parse_config
from monitor.results import FailureKind, ProbeResult, Problem
from monitor.rules import (
    FLAP_HIGH,
    FLAP_LOW,
    FLAP_MIN,
    FLAP_WINDOW,
    Flap,
    FlapChanged,
    Recovered,
    Track,
    Transition,
    Tripped,
    evaluate,
    flap,
)

CONFIG = parse_config(
    """
version: 1
sites:
  - name: shop
    checks:
      - {type: http, url: "https://shop.example/", failure_threshold: 3, success_threshold: 2}
""",
    "sites.yaml",
    {},
)
(CHECK,) = CONFIG.checks
DOWN = ProbeResult(
    duration=0.1, problems=(Problem(condition="production_down", kind=FailureKind.BAD_STATUS, summary="503"),)
)
UP = ProbeResult(duration=0.1)


def results(pattern: str) -> list[ProbeResult]:
    """'F' a failing probe, 'S' a passing one."""
    return [DOWN if c == "F" else UP for c in pattern.replace(" ", "")]


def run(
    seq: Sequence[ProbeResult], check: Check = CHECK, config: Config = CONFIG
) -> tuple[list[Transition], list[FlapChanged], dict[str, Flap], dict[str, Track]]:
    """Feed results through flap() then evaluate(), exactly as the engine does."""
    tracks: dict[str, Track] = {}
    flaps: dict[str, Flap] = {}
    transitions: list[Transition] = []
    events: list[FlapChanged] = []
    for result in seq:
        flaps, ev = flap(flaps, result, check, tracks)
        holding = frozenset(c for c, f in flaps.items() if f.flapping)
        tracks, tr = evaluate(tracks, result, check, config.conditions, holding=holding)
        transitions += tr
        events += ev
    return transitions, events, flaps, tracks


def count(transitions: list[Transition], kind: type) -> int:
    return sum(isinstance(t, kind) for t in transitions)


def test_without_flapping_every_swing_opens_and_resolves() -> None:
    """Two clean outages far apart: trip, recover, trip, recover — nothing is held."""
    transitions, events, _, _ = run(results("FFF SS" + "S" * 20 + "FFF SS"))
    assert (count(transitions, Tripped), count(transitions, Recovered)) == (2, 2)
    assert events == []


def test_steady_failure_and_a_single_blip_do_not_flap() -> None:
    """A long outage has no state changes; one blip in a healthy run has two: neither is flapping."""
    _, events, flaps, _ = run(results("F" * 30))
    assert events == []
    assert not flaps["production_down"].flapping
    _, events, _, _ = run(results("S" * 10 + "F" + "S" * 10))
    assert events == []


def test_swinging_check_trips_at_most_twice_and_stays_open() -> None:
    """FFFSS six times: without flap detection 6 incidents; with it the second one stays open."""
    transitions, events, flaps, tracks = run(results("FFFSS" * 6))
    assert count(transitions, Tripped) <= 2
    assert count(transitions, Recovered) <= 1
    assert events[0] == FlapChanged("production_down", True, events[0].changes, events[0].window)
    assert flaps["production_down"].flapping
    assert tracks["production_down"].active  # held open through the passes


def test_hysteresis_settles_only_when_calm_then_recovers_once() -> None:
    """After flapping, passes keep it open until the change rate falls to FLAP_LOW; then one Recovered."""
    swings = results("FFFSS" * 4)
    before, events, flaps, _ = run(swings)
    assert flaps["production_down"].flapping
    calm = results("S" * FLAP_WINDOW)
    transitions, events, flaps, tracks = run([*swings, *calm])
    stopped = [e for e in events if not e.flapping]
    assert len(stopped) == 1
    assert stopped[0].changes / (stopped[0].window - 1) <= FLAP_LOW
    assert count(transitions, Recovered) - count(before, Recovered) == 1  # one, once it settled
    assert isinstance(transitions[-1], Recovered)
    assert "production_down" not in tracks
    assert "production_down" not in flaps  # history of passes only: forgotten


def test_judged_only_with_enough_history_and_at_the_high_threshold() -> None:
    """Fewer than FLAP_MIN outcomes never flap; alternating F/S (100% changes) flaps once judged."""
    _, events, _, _ = run(results("FS" * (FLAP_MIN // 2 - 1)))
    assert events == []
    _, events, _, _ = run(results("FS" * FLAP_MIN))
    assert [e.flapping for e in events] == [True]
    assert events[0].changes / (events[0].window - 1) >= FLAP_HIGH


def test_alternating_without_a_trip_never_opens_anything() -> None:
    """Flapping is about swings of an incident: F/S alternation below failure_threshold trips nothing."""
    transitions, events, _, _ = run(results("FS" * 15))
    assert transitions == []
    assert events[0].flapping


# -- through the engine ----------------------------------------------------------------------

ENGINE_CONFIG = """
version: 1
defaults: {{interval: 30s, timeout: 5s, failure_threshold: 3, success_threshold: 2}}
people:
  owen: {{name: Owen, notify: [hook]}}
channels:
  hook: {{type: webhook, url: "http://127.0.0.1:9/hook"}}
conditions:
  production_down: {{first_responders: [owen]}}
sites:
  - name: shop
    checks:
      - {{type: http, url: "https://shop.example/"}}
"""


async def test_engine_keeps_one_incident_with_a_note_and_pages_once_per_opening(
    config_from: Callable[..., Config], engine_for: Callable[..., Any]
) -> None:
    """Through the engine: a flapping check leaves one incident open with a 'flapping' note; few pages."""
    clock = FakeClock()
    engine = await engine_for(config_from(ENGINE_CONFIG.format()), clock)
    (check,) = engine.config.checks
    for result in results("FFFSS" * 8):
        await engine.handle_result(check, result)
        await clock.advance(30)
    incidents = await engine.store.list_incidents("all")
    assert len(incidents) <= 2, [i.id for i in incidents]
    (still_open,) = engine.open_incidents()
    assert any(e.event == "flapping" for e in still_open.timeline)
    opened_pages = [i for i in await engine.store.list_outbox() if i.event == "opened"]
    assert len(opened_pages) == len(incidents)  # one page per incident, none per swing
    for result in results("S" * FLAP_WINDOW):
        await engine.handle_result(check, result)
        await clock.advance(30)
    assert engine.open_incidents() == []
    resolved = await engine.store.get_incident(still_open.id)
    assert resolved is not None
    assert [e.event for e in resolved.timeline].count("stable") == 1
    assert len(await engine.store.list_incidents("all")) == len(incidents)
