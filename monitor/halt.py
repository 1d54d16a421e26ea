"""Halt state: halted while any open incident has a halt condition not lifted by an override."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from monitor.clock import rfc3339
from monitor.incidents.model import Incident
from monitor.incidents.report import write_atomic
from monitor.store import Override


@dataclass(frozen=True, slots=True)
class HaltState:
    halted: bool
    conditions: tuple[str, ...]
    incidents: tuple[str, ...]
    since: float | None
    override: Override | None
    lifted: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "halted": self.halted,
            "conditions": list(self.conditions),
            "incidents": list(self.incidents),
            "since": rfc3339(self.since),
            "override": self.override.to_json() if self.override else None,
            "lifted_incidents": list(self.lifted),
        }


def compute(open_incidents: Sequence[Incident], overrides: Sequence[Override], now: float) -> HaltState:
    """Pure: the halt state for these open incidents and overrides at `now`."""
    active = next((o for o in overrides if o.action == "lift_halt" and o.active(now)), None)
    lifted = set(active.incident_ids) if active else set()
    halting = [i for i in open_incidents if i.halt and i.is_open]
    blocking = sorted((i for i in halting if i.id not in lifted), key=lambda i: (i.opened_at, i.id))
    return HaltState(
        halted=bool(blocking),
        conditions=tuple(sorted({i.condition for i in blocking})),
        incidents=tuple(i.id for i in blocking),
        since=blocking[0].opened_at if blocking else None,
        override=active,
        lifted=tuple(sorted(i.id for i in halting if i.id in lifted)),
    )


def write_halt_file(workspace: Path, state: HaltState) -> None:
    """`<workspace>/.tmp/HALT` exists exactly while halted (JSON: conditions, incidents, since)."""
    path = workspace / ".tmp" / "HALT"
    if state.halted:
        doc = {"conditions": list(state.conditions), "incidents": list(state.incidents), "since": rfc3339(state.since)}
        write_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        path.unlink(missing_ok=True)
