"""Rules: consecutive failures trip a condition, consecutive passes recover it; evidence trips at once."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config import Check, Config, parse_config
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.rules import Changed, Recovered, Track, Tripped, evaluate

CONFIG: Config = parse_config(
    """
version: 1
sites:
  - name: shop
    checks:
      - {type: http, url: "https://shop.example/", failure_threshold: 3, success_threshold: 2}
      - {type: http, name: forced, url: "https://shop.example/x", condition: api_failure, severity: SEV-3}
""",
    "sites.yaml",
    {},
)
CHECK, FORCED = CONFIG.checks


def fail(
    condition: str = "production_down", summary: str = "https://shop.example/ answered 503", **kw: Any
) -> ProbeResult:
    return ProbeResult(
        duration=0.01, problems=(Problem(condition=condition, kind=FailureKind.BAD_STATUS, summary=summary, **kw),)
    )


OK = ProbeResult(duration=0.01)


def run(results: list[ProbeResult], check: Check = CHECK) -> tuple[dict[str, Track], list[Any]]:
    state: dict[str, Track] = {}
    transitions: list[Any] = []
    for result in results:
        state, step = evaluate(state, result, check, CONFIG.conditions)
        transitions.extend(step)
    return state, transitions


def test_trips_only_after_failure_threshold_consecutive_failures() -> None:
    """Two failures do nothing; the third trips production_down at SEV-1."""
    _, transitions = run([fail(), fail()])
    assert transitions == []
    state, transitions = run([fail(), fail(), fail()])
    assert transitions == [Tripped("production_down", Severity.SEV1, fail().problems[0], 3)]
    assert state["production_down"].active


def test_a_pass_in_between_resets_the_failure_count() -> None:
    """fail, fail, pass, fail, fail: never three in a row, never tripped."""
    _, transitions = run([fail(), fail(), OK, fail(), fail()])
    assert transitions == []


def test_recovers_after_success_threshold_consecutive_passes() -> None:
    """Once tripped, one pass is not enough; two are."""
    _, transitions = run([fail()] * 3 + [OK])
    assert not any(isinstance(t, Recovered) for t in transitions)
    state, transitions = run([fail()] * 3 + [OK, OK])
    assert transitions[-1] == Recovered("production_down", 2)
    assert state == {}


def test_a_failure_while_recovering_keeps_the_condition_active() -> None:
    """pass, fail, pass does not recover: passes must be consecutive."""
    state, transitions = run([fail()] * 3 + [OK, fail(), OK])
    assert state["production_down"].active
    assert not any(isinstance(t, Recovered) for t in transitions)


def test_a_changed_problem_while_active_is_reported() -> None:
    """503 then timeout while tripped: one Changed transition, no second trip."""
    _, transitions = run([fail()] * 3 + [fail(summary="https://shop.example/ did not answer within 10s")] * 2)
    kinds = [type(t) for t in transitions]
    assert kinds == [Tripped, Changed]


def test_evidence_conditions_trip_on_first_sight() -> None:
    """security_breach waits for a person, so the first probe that shows it trips it."""
    _, transitions = run([fail("security_breach", "serves sk_live_…#abc")])
    assert [type(t) for t in transitions] == [Tripped]


def test_conditions_are_tracked_separately() -> None:
    """From 503s to 404s: production_down recovers while api_failure builds up and trips."""
    not_found = fail("api_failure", "https://shop.example/ answered 404")
    _, transitions = run([fail()] * 3 + [not_found] * 3)
    assert [(type(t).__name__, t.condition) for t in transitions] == [
        ("Tripped", "production_down"),
        ("Recovered", "production_down"),
        ("Tripped", "api_failure"),
    ]


def test_check_overrides_condition_and_severity() -> None:
    """A check's `condition` and `severity` keys redirect every failure it reports."""
    state, transitions = run([fail()] * 3, check=FORCED)
    assert transitions[0].condition == "api_failure"
    assert transitions[0].severity is Severity.SEV3
    assert set(state) == {"api_failure"}


def test_problem_severity_beats_condition_default() -> None:
    """A tls probe can say SEV-2 for cert_expiry (default SEV-3)."""
    _, transitions = run([fail("cert_expiry", "expires in 2 days", severity=Severity.SEV2)] * 3)
    assert transitions[0].severity is Severity.SEV2


@pytest.mark.parametrize("track", [Track(), Track(2, 0, False), Track(5, 1, True, fail().problems[0], Severity.SEV1)])
def test_track_round_trips_through_json(track: Track) -> None:
    """Rule state survives a restart: Track -> JSON -> Track is lossless."""
    assert Track.from_json(track.to_json()) == track
