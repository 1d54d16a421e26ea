"""Pure incident state changes: (incident, input, now) -> incident. No I/O here.

INVESTIGATING --ack--> MITIGATING --resolve--> RESOLVED
      \\____________________resolve_____________/
"""

from __future__ import annotations

from dataclasses import replace

from monitor.config import ConditionPolicy
from monitor.incidents.model import Incident, Status, TimelineEntry
from monitor.results import Problem, Severity


class TransitionRefused(ValueError):
    """The incident is not in a state that allows this (e.g. acknowledging a resolved one)."""


def describe(site: str, problem: Problem, streak: int) -> str:
    tail = f" on {streak} consecutive probes" if streak > 1 else ""
    return f"{site}: {problem.summary}{tail}"


def impact(policy: ConditionPolicy) -> str:
    if policy.halt:
        return f"{policy.impact}; halt condition {policy.name} is active"
    return policy.impact


def open_incident(
    *,
    incident_id: str,
    site: str,
    client: str,
    check: str,
    policy: ConditionPolicy,
    severity: Severity,
    problem: Problem,
    streak: int,
    now: float,
) -> Incident:
    responders = policy.first_responders
    detail = "; ".join([problem.summary, *problem.evidence])
    return Incident(
        id=incident_id,
        site=site,
        client=client,
        check=check,
        checks=(check,),
        condition=policy.name,
        severity=severity,
        status=Status.INVESTIGATING,
        halt=policy.halt,
        auto_resolve=policy.auto_resolve,
        description=describe(site, problem, streak),
        impact=impact(policy),
        opened_at=now,
        first_responder=responders[0] if responders else None,
        responders=responders,
        failures=streak,
        timeline=(TimelineEntry(now, "opened", "monitor", detail),),
    )


def add_event(incident: Incident, now: float, event: str, detail: str = "", by: str | None = "monitor") -> Incident:
    return replace(incident, timeline=(*incident.timeline, TimelineEntry(now, event, by, detail)))


def join(incident: Incident, *, check: str, problem: Problem, severity: Severity, now: float) -> Incident:
    """Another failure of the same (site, condition): it joins this incident's timeline."""
    checks = incident.checks if check in incident.checks else (*incident.checks, check)
    incident = replace(incident, checks=checks, failures=incident.failures + 1)
    detail = "; ".join([f"{check}: {problem.summary}", *problem.evidence])
    incident = add_event(incident, now, "failing", detail)
    if severity.rank < incident.severity.rank:
        incident = replace(incident, severity=severity)
        incident = add_event(incident, now, "severity_raised", f"now {severity.value}")
    return incident


def recover(incident: Incident, *, check: str, streak: int, still_failing: bool, now: float) -> Incident:
    """A check stopped failing. Auto-resolving conditions resolve once no check still fails."""
    incident = add_event(incident, now, "recovered", f"{check} passed {streak} consecutive probes")
    if still_failing or not incident.is_open:
        return incident
    if not incident.auto_resolve:
        return add_event(incident, now, "waiting", "checks pass again; this condition waits for a person to resolve it")
    return resolve(incident, by="monitor", note="recovered: all checks passing", now=now)


def acknowledge(incident: Incident, *, by: str, now: float) -> Incident:
    if incident.status is Status.RESOLVED:
        raise TransitionRefused(f"{incident.id} is already resolved")
    if incident.status is Status.MITIGATING:
        return add_event(incident, now, "acknowledged", "acknowledged again", by)
    incident = replace(
        incident, status=Status.MITIGATING, acknowledged_at=now, acknowledged_by=by, next_escalation_at=None
    )
    return add_event(incident, now, "acknowledged", "", by)


def resolve(incident: Incident, *, by: str, note: str, now: float) -> Incident:
    if incident.status is Status.RESOLVED:
        raise TransitionRefused(f"{incident.id} is already resolved")
    incident = replace(
        incident,
        status=Status.RESOLVED,
        resolved_at=now,
        resolved_by=by,
        resolution_note=note,
        next_escalation_at=None,
        next_reminder_at=None,
    )
    return add_event(incident, now, "resolved", note, by)


def annotate(incident: Incident, *, by: str, note: str, now: float) -> Incident:
    return add_event(incident, now, "note", note, by)
