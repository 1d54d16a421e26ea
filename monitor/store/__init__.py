"""The store contract: incidents, rule state, probe state, the notification outbox, overrides.

Every backend (sqlite.py, postgres.py) implements `Store` and passes the same
contract suite (tests/store/). Methods that change an incident take the outbox
rows produced by that change, so both commit in one transaction or not at all.
`create_incident` refuses a second open incident for the same (site, condition)
at the database level (a unique index), which is what makes "no incident opens
twice" hold across crashes and replicas.

Incident rows carry a version (optimistic concurrency): a stored incident reads
back with `Incident.version`, `update_incident` writes only if the row is still at
that version and returns the value at its new version, else raises StoreConflict;
the caller re-reads and re-applies its change (engine.Engine._change). With
replicas this is what keeps an ack on one replica and an escalation on another
from overwriting each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from monitor.clock import rfc3339
from monitor.errors import StoreError
from monitor.incidents.model import Incident


class StoreConflict(StoreError):
    """update_incident: another writer changed the incident since it was read."""


OutboxStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """One notification waiting to be (or already) delivered. `key` is the idempotency key."""

    key: str
    channel: str
    recipient: str
    event: str
    incident_ids: tuple[str, ...]
    payload: Mapping[str, Any]
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    status: OutboxStatus = "pending"
    last_error: str = ""
    delivered_at: float | None = None

    def retried(self, *, at: float, error: str) -> OutboxItem:
        return replace(self, attempts=self.attempts + 1, next_attempt_at=at, last_error=error)

    def delivered(self, *, at: float) -> OutboxItem:
        return replace(self, attempts=self.attempts + 1, status="delivered", delivered_at=at, last_error="")

    def failed(self, *, at: float, error: str) -> OutboxItem:
        return replace(self, attempts=self.attempts + 1, status="failed", next_attempt_at=at, last_error=error)


@dataclass(frozen=True, slots=True, kw_only=True)
class Override:
    """The owner lifting a halt until `until`, for the incidents open when it was made."""

    id: str
    action: str
    reason: str
    by: str
    created_at: float
    until: float
    incident_ids: tuple[str, ...] = ()
    revoked_at: float | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and self.created_at <= now < self.until

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "reason": self.reason,
            "by": self.by,
            "created_at": rfc3339(self.created_at),
            "until": rfc3339(self.until),
            "incidents": list(self.incident_ids),
        }


IncidentFilter = Literal["open", "resolved", "all"]


class Store(Protocol):
    url: str

    async def open(self) -> None:
        """Connect and migrate to the current schema. Raises StoreError naming the store."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError if the store cannot answer now."""

    # incidents
    async def reserve_incident_number(self, day: str) -> int:
        """The next NNN for incident ids of `day` (YYYYMMDD); never hands out a number twice."""

    async def create_incident(self, incident: Incident, outbox: Sequence[OutboxItem] = ()) -> bool:
        """Insert an open incident (at version 1) with its outbox rows. False (nothing written)
        if the (site, condition) pair already has an open incident."""

    async def update_incident(self, incident: Incident, outbox: Sequence[OutboxItem] = ()) -> Incident:
        """Write `incident` with its outbox rows if its row is still at `incident.version`
        (0: unconditionally); returns it at the new version. StoreConflict when another
        writer got there first (nothing written); StoreError when there is no such incident."""

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def find_open_incident(self, site: str, condition: str) -> Incident | None: ...

    async def list_incidents(self, status: IncidentFilter = "all", limit: int = 200) -> list[Incident]:
        """Newest first."""

    # rule state per check
    async def load_check_states(self) -> dict[str, dict[str, Any]]: ...

    async def save_check_state(self, check_key: str, state: Mapping[str, Any]) -> None:
        """An empty mapping deletes the row."""

    # small durable memory for probes
    async def get_probe_state(self, scope: str, key: str) -> Any: ...

    async def put_probe_state(self, scope: str, key: str, value: Any) -> None: ...

    # outbox
    async def enqueue(self, items: Sequence[OutboxItem]) -> int:
        """Insert items whose key is new; return how many were new."""

    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        """Pending items whose next attempt is due, oldest first."""

    async def save_outbox_item(self, item: OutboxItem) -> None: ...

    async def outbox_depth(self) -> int:
        """Pending items, due or not."""

    async def list_outbox(self, incident_id: str | None = None, limit: int = 500) -> list[OutboxItem]: ...

    # overrides
    async def save_override(self, override: Override) -> None: ...

    async def list_overrides(self, limit: int = 50) -> list[Override]:
        """Newest first."""


def open_store(url: str, *, base_dir: str = ".") -> Store:
    """A Store for `sqlite:///path` (relative to base_dir) or `postgresql://…`."""
    if url.startswith("sqlite://"):
        from monitor.store.sqlite import SqliteStore

        return SqliteStore(url, base_dir=base_dir)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from monitor.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"the PostgreSQL store needs the postgres extra: pip install 'monitor[postgres]' ({exc})"
            ) from exc
        return PostgresStore(url)
    raise StoreError(f"unsupported store URL scheme in {url.split('://')[0]!r}")


__all__ = ["IncidentFilter", "OutboxItem", "Override", "Store", "StoreConflict", "open_store"]
