"""Row <-> value conversions shared by every store backend (JSON bodies via orjson)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from monitor.incidents.model import Incident
from monitor.store import OutboxItem, Override


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | str | memoryview) -> Any:
    if isinstance(data, memoryview):
        data = bytes(data)
    return orjson.loads(data)


def incident_from_row(row: Any) -> Incident:
    """(body, version) as both backends select them."""
    return replace(Incident.from_record(loads(row[0])), version=int(row[1]))


def incident_row(incident: Incident) -> tuple[Any, ...]:
    """(id, site, condition, status, opened_at, body) as both backends insert them."""
    return (
        incident.id,
        incident.site,
        incident.condition,
        incident.status.value,
        incident.opened_at,
        dumps(incident.to_record()),
    )


def outbox_to_json(item: OutboxItem) -> dict[str, Any]:
    return {
        "key": item.key,
        "channel": item.channel,
        "recipient": item.recipient,
        "event": item.event,
        "incident_ids": list(item.incident_ids),
        "payload": item.payload,
        "created_at": item.created_at,
        "next_attempt_at": item.next_attempt_at,
        "attempts": item.attempts,
        "status": item.status,
        "last_error": item.last_error,
        "delivered_at": item.delivered_at,
    }


def outbox_from_json(doc: dict[str, Any]) -> OutboxItem:
    return OutboxItem(
        key=doc["key"],
        channel=doc["channel"],
        recipient=doc["recipient"],
        event=doc["event"],
        incident_ids=tuple(doc["incident_ids"]),
        payload=doc["payload"],
        created_at=doc["created_at"],
        next_attempt_at=doc["next_attempt_at"],
        attempts=doc["attempts"],
        status=doc["status"],
        last_error=doc["last_error"],
        delivered_at=doc["delivered_at"],
    )


def override_to_json(o: Override) -> dict[str, Any]:
    return {
        "id": o.id,
        "action": o.action,
        "reason": o.reason,
        "by": o.by,
        "created_at": o.created_at,
        "until": o.until,
        "incident_ids": list(o.incident_ids),
        "revoked_at": o.revoked_at,
    }


def override_from_json(doc: dict[str, Any]) -> Override:
    return Override(
        id=doc["id"],
        action=doc["action"],
        reason=doc["reason"],
        by=doc["by"],
        created_at=doc["created_at"],
        until=doc["until"],
        incident_ids=tuple(doc["incident_ids"]),
        revoked_at=doc.get("revoked_at"),
    )
