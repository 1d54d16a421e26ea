"""The read side of the engine: what the API, the status page and probes see of one check."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from monitor.clock import rfc3339
from monitor.config import Check
from monitor.results import ProbeResult
from monitor.rules import Track
from monitor.store import Store

HISTORY = 60  # probes kept per check for the status page bar


@dataclass(slots=True)
class CheckView:
    """What the API and status page show for one check."""

    check: Check
    last: ProbeResult | None = None
    last_at: float | None = None
    own: ProbeResult | None = None  # the last result this process probed (metrics); `last` may be another's
    history: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def to_json(self, tracks: dict[str, Track]) -> dict[str, Any]:
        last = self.last
        state = "pending" if last is None else "up" if last.ok else "failing"
        if any(t.active for t in tracks.values()):
            state = "down"
        return {
            "name": self.check.name,
            "type": self.check.type,
            "target": self.check.target,
            "interval": self.check.interval,
            "state": state,
            "last_result": None
            if last is None
            else {
                "at": rfc3339(self.last_at),
                "ok": last.ok,
                "result": last.result_label,
                "duration_seconds": round(last.duration, 6),
                "status_code": last.status_code,
                "detail": last.detail,
                "phases": {k: round(v, 6) for k, v in last.phases.items()},
                "problems": [p.to_json() for p in last.problems],
                "cert_expires_at": rfc3339(last.cert_expires_at),
            },
            "conditions": {
                name: {
                    "active": t.active,
                    "failures": t.failures,
                    "successes": t.successes,
                    "severity": t.severity.value if t.severity else None,
                }
                for name, t in tracks.items()
            },
            "history": [ok for _, ok in self.history],
        }


class StoreProbeState:
    """ProbeState backed by the store, scoped to one check."""

    def __init__(self, store: Store, scope: str) -> None:
        self.store = store
        self.scope = scope

    async def get(self, key: str) -> Any:
        return await self.store.get_probe_state(self.scope, key)

    async def put(self, key: str, value: Any) -> None:
        await self.store.put_probe_state(self.scope, key, value)
