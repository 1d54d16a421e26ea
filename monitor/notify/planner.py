"""Pure paging decisions: who hears about an incident, when, through which channels.

Every decision returns the changed incident (paged list, escalation step, timeline)
and the outbox rows to write with it in one transaction. Keys are deterministic
(incident, event, step, person, channel), so re-planning after a crash never
queues a page twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from monitor.config import ConditionPolicy, Config
from monitor.incidents.lifecycle import add_event
from monitor.incidents.model import Incident, Status
from monitor.results import Severity
from monitor.store import OutboxItem

Plan = tuple[Incident, list[OutboxItem]]
SEV4_NEVER_PAGES = "SEV-4 never pages"


def page(incident: Incident, handles: Sequence[str], *, event: str, step: str, config: Config, now: float) -> Plan:
    """Queue `event` for each person through each of their channels; record who was paged.

    The rows carry the incident as it is after this change (its `paged` list and timeline
    already include this page), which is what receivers see.
    """
    paged = list(incident.paged)
    routes: list[tuple[str, tuple[str, ...]]] = []
    for handle in handles:
        person = config.people.get(handle)
        channels = person.notify if person else ()
        routes.append((handle, channels))
        if event in ("opened", "escalated") and handle not in paged:
            paged.append(handle)
        via = ", ".join(channels) if channels else "no channel configured"
        incident = add_event(
            incident, now, "paged" if event in ("opened", "escalated") else f"notified_{event}", f"@{handle} via {via}"
        )
    incident = replace(incident, paged=tuple(paged))
    view = incident.to_json()
    items = [
        OutboxItem(
            key=f"{incident.id}:{event}:{step}:{handle}:{channel}",
            channel=channel,
            recipient=handle,
            event=event,
            incident_ids=(incident.id,),
            payload={"incident": view},
            created_at=now,
            next_attempt_at=now,
        )
        for handle, channels in routes
        for channel in channels
    ]
    return incident, items


def on_open(incident: Incident, policy: ConditionPolicy, config: Config, now: float) -> Plan:
    """Page the first responders (the whole chain with escalate_immediately; the chain's
    first person when no first responder is configured) and set the ack deadline."""
    if incident.severity is Severity.SEV4:
        return add_event(incident, now, "not_paged", SEV4_NEVER_PAGES), []
    chain = policy.escalation
    if policy.escalate_immediately:
        targets = _unique([*policy.first_responders, *chain])
        incident = replace(incident, escalation_step=len(chain), next_escalation_at=None)
    else:
        targets = list(policy.first_responders)
        step = 0
        if not targets and chain:  # nobody first in line: don't let a SEV-1 wait a deadline for nothing
            targets, step = [chain[0]], 1
        deadline = policy.ack_deadline(incident.severity)
        due = now + deadline if step < len(chain) and deadline is not None else None
        incident = replace(incident, escalation_step=step, next_escalation_at=due)
    if policy.remind_every:
        incident = replace(incident, next_reminder_at=now + policy.remind_every)
    if not targets:
        return add_event(incident, now, "not_paged", f"no first responders configured for {policy.name}"), []
    return page(incident, targets, event="opened", step="0", config=config, now=now)


def on_tick(incident: Incident, policy: ConditionPolicy, config: Config, now: float) -> Plan | None:
    """Escalate an unacknowledged incident past its deadline, or remind; None when nothing is due.

    An incident opened as SEV-4 (not paged) whose severity was raised since is paged now.
    """
    if incident.is_open and incident.severity is not Severity.SEV4 and _sev4_unpaged(incident):
        return on_open(incident, policy, config, now)
    if (
        incident.status is Status.INVESTIGATING
        and incident.next_escalation_at is not None
        and now >= incident.next_escalation_at
    ):
        return _escalate(incident, policy, config, now)
    if (
        incident.is_open
        and incident.next_reminder_at is not None
        and now >= incident.next_reminder_at
        and policy.remind_every
    ):
        count = len({e.at for e in incident.timeline if e.event == "notified_reminder"}) + 1
        targets = list(incident.paged)
        incident = replace(incident, next_reminder_at=now + policy.remind_every)
        return page(incident, targets, event="reminder", step=str(count), config=config, now=now)
    return None


def _escalate(incident: Incident, policy: ConditionPolicy, config: Config, now: float) -> Plan:
    chain = policy.escalation
    step = incident.escalation_step
    if step >= len(chain):
        return replace(incident, next_escalation_at=None), []
    deadline = policy.ack_deadline(incident.severity)
    more = step + 1 < len(chain) and deadline is not None
    incident = replace(
        incident, escalation_step=step + 1, next_escalation_at=now + deadline if more and deadline else None
    )
    incident = add_event(incident, now, "escalated", f"not acknowledged in time; paging @{chain[step]}")
    return page(incident, [chain[step]], event="escalated", step=str(step + 1), config=config, now=now)


def on_acknowledged(incident: Incident, config: Config, now: float) -> Plan:
    others = [p for p in incident.paged if p != incident.acknowledged_by]
    return page(incident, others, event="acknowledged", step="0", config=config, now=now)


def on_resolved(incident: Incident, config: Config, now: float) -> Plan:
    return page(incident, list(incident.paged), event="resolved", step="0", config=config, now=now)


def _sev4_unpaged(incident: Incident) -> bool:
    """Nobody was paged, and the last reason for that was the SEV-4 rule."""
    if incident.paged:
        return False
    reasons = [e.detail for e in incident.timeline if e.event == "not_paged"]
    return bool(reasons) and reasons[-1] == SEV4_NEVER_PAGES


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
