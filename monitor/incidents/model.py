"""The incident as stored and as shown by the API (SPEC §6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from monitor.clock import parse_rfc3339, rfc3339
from monitor.results import Severity


class Status(StrEnum):
    INVESTIGATING = "INVESTIGATING"
    MITIGATING = "MITIGATING"
    RESOLVED = "RESOLVED"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: float
    event: str
    by: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"at": rfc3339(self.at), "event": self.event, "by": self.by, "detail": self.detail}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TimelineEntry:
        return cls(parse_rfc3339(doc["at"]), doc["event"], doc.get("by"), doc.get("detail", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    id: str
    site: str
    client: str
    check: str
    condition: str
    severity: Severity
    status: Status
    halt: bool
    auto_resolve: bool
    description: str
    impact: str
    opened_at: float
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    resolution_note: str = ""
    first_responder: str | None = None
    responders: tuple[str, ...] = ()
    paged: tuple[str, ...] = ()
    escalation_step: int = 0
    next_escalation_at: float | None = None
    next_reminder_at: float | None = None
    failures: int = 0
    checks: tuple[str, ...] = ()
    posted: tuple[str, ...] = ()
    timeline: tuple[TimelineEntry, ...] = field(default=())
    # The store's row version this value was read or written at (optimistic concurrency:
    # update_incident refuses a stale one). Bookkeeping only: not in the record or the API.
    version: int = field(default=0, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status is not Status.RESOLVED

    def to_json(self) -> dict[str, Any]:
        """The API view. Times are RFC 3339 UTC."""
        return {
            "id": self.id,
            "site": self.site,
            "client": self.client,
            "check": self.check,
            "checks": list(self.checks),
            "condition": self.condition,
            "severity": self.severity.value,
            "status": self.status.value,
            "halt": self.halt,
            "auto_resolve": self.auto_resolve,
            "description": self.description,
            "impact": self.impact,
            "opened_at": rfc3339(self.opened_at),
            "acknowledged_at": rfc3339(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": rfc3339(self.resolved_at),
            "resolved_by": self.resolved_by,
            "resolution_note": self.resolution_note,
            "first_responder": self.first_responder,
            "responders": list(self.responders),
            "paged": list(self.paged),
            "failures": self.failures,
            "timeline": [e.to_json() for e in self.timeline],
        }

    def to_record(self) -> dict[str, Any]:
        """The stored form: the API view plus engine bookkeeping."""
        doc = self.to_json()
        doc.update(
            escalation_step=self.escalation_step,
            next_escalation_at=self.next_escalation_at,
            next_reminder_at=self.next_reminder_at,
            posted=list(self.posted),
            opened_ts=self.opened_at,
            acknowledged_ts=self.acknowledged_at,
            resolved_ts=self.resolved_at,
        )
        return doc

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> Incident:
        return cls(
            id=doc["id"],
            site=doc["site"],
            client=doc.get("client", ""),
            check=doc["check"],
            condition=doc["condition"],
            severity=Severity(doc["severity"]),
            status=Status(doc["status"]),
            halt=doc["halt"],
            auto_resolve=doc["auto_resolve"],
            description=doc["description"],
            impact=doc["impact"],
            opened_at=doc["opened_ts"],
            acknowledged_at=doc.get("acknowledged_ts"),
            acknowledged_by=doc.get("acknowledged_by"),
            resolved_at=doc.get("resolved_ts"),
            resolved_by=doc.get("resolved_by"),
            resolution_note=doc.get("resolution_note", ""),
            first_responder=doc.get("first_responder"),
            responders=tuple(doc.get("responders", ())),
            paged=tuple(doc.get("paged", ())),
            escalation_step=doc.get("escalation_step", 0),
            next_escalation_at=doc.get("next_escalation_at"),
            next_reminder_at=doc.get("next_reminder_at"),
            failures=doc.get("failures", 0),
            checks=tuple(doc.get("checks", ())),
            posted=tuple(doc.get("posted", ())),
            timeline=tuple(TimelineEntry.from_json(e) for e in doc.get("timeline", ())),
        )


def incident_id(day: str, severity: Severity, number: int) -> str:
    """INCIDENT-YYYYMMDD-SEVn-NNN."""
    return f"INCIDENT-{day}-SEV{severity.rank}-{number:03d}"
