"""Pure rules: (check state, probe result) -> (new check state, condition transitions).

Each check keeps one Track per condition it has failed. A result that does not
fail a tracked condition counts as a pass for it. A condition trips after
`failure_threshold` consecutive failing probes and recovers after
`success_threshold` consecutive passing ones. Conditions that wait for a person
to resolve them (security_breach, data_loss, financial_error by default) are
evidence, not symptoms: they trip on the first probe that shows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from monitor.conditions import PRODUCTION_DOWN
from monitor.config import Check, ConditionPolicy
from monitor.results import FailureKind, ProbeResult, Problem, Severity


@dataclass(frozen=True, slots=True)
class Track:
    failures: int = 0
    successes: int = 0
    active: bool = False
    problem: Problem | None = None
    severity: Severity | None = None

    def to_json(self) -> dict[str, Any]:
        p = self.problem
        return {
            "failures": self.failures,
            "successes": self.successes,
            "active": self.active,
            "severity": self.severity.value if self.severity else None,
            "problem": None if p is None else p.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Track:
        p = doc.get("problem")
        problem = None if p is None else Problem.from_json(p)
        sev = doc.get("severity")
        return cls(doc["failures"], doc["successes"], doc["active"], problem, Severity(sev) if sev else None)


CheckState = Mapping[str, Track]


@dataclass(frozen=True, slots=True)
class Tripped:
    condition: str
    severity: Severity
    problem: Problem
    streak: int


@dataclass(frozen=True, slots=True)
class Changed:
    """Still failing, but the problem or its severity changed: worth a timeline entry."""

    condition: str
    severity: Severity
    problem: Problem


@dataclass(frozen=True, slots=True)
class Recovered:
    condition: str
    streak: int


Transition = Tripped | Changed | Recovered


def evaluate(
    state: CheckState,
    result: ProbeResult,
    check: Check,
    policies: Mapping[str, ConditionPolicy],
    *,
    holding: frozenset[str] = frozenset(),
) -> tuple[dict[str, Track], list[Transition]]:
    """Advance every track of one check by one probe result.

    Conditions in `holding` (flapping, see `flap`) stay active through passes: no Recovered.
    """
    failing = _by_condition(result, check)
    out: dict[str, Track] = {}
    transitions: list[Transition] = []
    for condition in [*state, *(c for c in failing if c not in state)]:
        track = state.get(condition, Track())
        problem = failing.get(condition)
        policy = policies.get(condition)
        if problem is None:
            track, transition = _passed(track, condition, check.success_threshold, hold=condition in holding)
        else:
            threshold = 1 if policy is not None and not policy.auto_resolve else check.failure_threshold
            severity = check.severity or problem.severity or (policy.severity if policy else Severity.SEV3)
            track, transition = _failed(track, condition, problem, severity, threshold)
        if transition is not None:
            transitions.append(transition)
        if track.active or track.failures:
            out[condition] = track
    return out, transitions


def _by_condition(result: ProbeResult, check: Check) -> dict[str, Problem]:
    """The first (most serious) problem per condition, after the check's own overrides."""
    out: dict[str, Problem] = {}
    for problem in result.problems:
        if check.condition is not None:
            problem = replace(problem, condition=check.condition)
        if problem.condition in out:
            first = out[problem.condition]
            out[problem.condition] = replace(first, evidence=first.evidence + problem.evidence)
        else:
            out[problem.condition] = problem
    return out


def _failed(
    track: Track, condition: str, problem: Problem, severity: Severity, threshold: int
) -> tuple[Track, Transition | None]:
    failures = track.failures + 1
    new = Track(failures, 0, track.active, problem, severity)
    if not track.active and failures >= threshold:
        return replace(new, active=True), Tripped(condition, severity, problem, failures)
    if track.active and (
        track.problem is None or track.problem.summary != problem.summary or track.severity != severity
    ):
        return new, Changed(condition, severity, problem)
    return new, None


def _passed(track: Track, condition: str, threshold: int, *, hold: bool = False) -> tuple[Track, Transition | None]:
    if not track.active:
        return Track(), None
    successes = track.successes + 1
    if successes >= threshold and not hold:
        return Track(), Recovered(condition, successes)
    return Track(0, successes, True, track.problem, track.severity), None


# -- flapping ------------------------------------------------------------------------------
#
# Nagios-style: remember the last FLAP_WINDOW outcomes per (check, condition) and count how
# often consecutive outcomes differ. At FLAP_HIGH of possible changes the condition is flapping;
# it settles only at FLAP_LOW or below (hysteresis, so it does not flap in and out of flapping).
# While flapping, an active condition does not recover: its incident stays open with a timeline
# note instead of resolving and re-opening (and re-paging) on every swing.

FLAP_WINDOW = 20
FLAP_MIN = 10  # outcomes needed before judging
FLAP_HIGH = 0.30
FLAP_LOW = 0.15


@dataclass(frozen=True, slots=True)
class Flap:
    outcomes: tuple[bool, ...] = ()  # True: the condition failed on that probe; oldest first
    flapping: bool = False

    @property
    def changes(self) -> int:
        return sum(a != b for a, b in zip(self.outcomes, self.outcomes[1:], strict=False))

    @property
    def ratio(self) -> float:
        return self.changes / (len(self.outcomes) - 1) if len(self.outcomes) > 1 else 0.0


@dataclass(frozen=True, slots=True)
class FlapChanged:
    """A condition started (flapping=True) or stopped flapping: worth a timeline note, never a page."""

    condition: str
    flapping: bool
    changes: int
    window: int


def flap(
    state: Mapping[str, Flap], result: ProbeResult, check: Check, tracked: Iterable[str] = ()
) -> tuple[dict[str, Flap], list[FlapChanged]]:
    """Record one probe's outcome for every condition seen or tracked; report flapping starting/stopping."""
    failing = _by_condition(result, check)
    out: dict[str, Flap] = {}
    events: list[FlapChanged] = []
    for condition in dict.fromkeys([*state, *failing, *tracked]):
        before = state.get(condition, Flap())
        outcomes = (*before.outcomes, condition in failing)[-FLAP_WINDOW:]
        after = Flap(outcomes, _flapping(before.flapping, Flap(outcomes)))
        if after.flapping != before.flapping:
            events.append(FlapChanged(condition, after.flapping, after.changes, len(outcomes)))
        if after.flapping or any(outcomes):
            out[condition] = after
    return out, events


def _flapping(was: bool, window: Flap) -> bool:
    if len(window.outcomes) < FLAP_MIN:
        return was
    return window.ratio > FLAP_LOW if was else window.ratio >= FLAP_HIGH


# -- the prober's own connectivity ---------------------------------------------------------

UNREACHABLE_KINDS = frozenset(
    {FailureKind.DNS, FailureKind.REFUSED, FailureKind.TIMEOUT, FailureKind.RESET, FailureKind.TLS}
)


def connectivity_ok(canaries_ok: Sequence[bool]) -> bool:
    """The prober is online unless it has canaries and reaches none of them."""
    return not canaries_ok or any(canaries_ok)


def blind(result: ProbeResult, online: bool) -> bool:
    """True when `result` says nothing about the target: we are offline and it failed to reach it.

    Such a result is shown but not judged, so an offline prober cannot trip production_down.
    """
    return not online and any(p.condition == PRODUCTION_DOWN and p.kind in UNREACHABLE_KINDS for p in result.problems)
