"""Time comes in through a Clock so thresholds and escalation are testable without sleeps."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (for timestamps people read)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and lag)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; sleepers wake when `advance` passes them."""

    def __init__(self, start: float = 1_764_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + max(0.0, seconds), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
        due = [s for s in self._sleepers if s[0] <= self._mono]
        self._sleepers = [s for s in self._sleepers if s[0] > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)
        for _ in range(5):  # let woken tasks run before returning
            await asyncio.sleep(0)


def rfc3339(ts: float | None) -> str | None:
    """Seconds since the epoch as RFC 3339 UTC with a Z, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 / ISO 8601 timestamp; naive times are taken as UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
