"""Maintenance windows and runtime silences: is a site in maintenance at time t? Pure.

Two sources, both per site or global (no `sites` / site "*"):

- configured windows (`maintenance:` in sites.yaml), one-off (`start`/`end`, RFC 3339)
  or recurring (`days` + `time` + `duration` in an IANA `timezone`, DST-aware);
- silences made at run time by a responder (`Engine.silence_site`), stored durably.

While a site is in maintenance probes and metrics go on, but no incident opens,
and open incidents neither escalate nor remind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor.clock import parse_rfc3339, rfc3339
from monitor.schema import Duration, Reader

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
GLOBAL = "*"


class Instant(float):
    """Seconds since the epoch, written in YAML as an RFC 3339 time (quoted or not)."""

    @classmethod
    def from_yaml(cls, reader: Reader, node: yaml.Node, path: str) -> Instant | None:
        got = reader.scalar(node, path)
        if got is None:
            return None
        value = got[0]
        try:
            if isinstance(value, datetime):
                aware = value if value.tzinfo else value.replace(tzinfo=UTC)
                return cls(aware.timestamp())
            if isinstance(value, date):
                return cls(datetime.combine(value, time(0), UTC).timestamp())
            if isinstance(value, str):
                return cls(parse_rfc3339(value))
        except ValueError:
            pass
        reader.error(node, path, "expected an RFC 3339 time like 2026-11-25T22:00:00Z")
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceWindow:
    """One `maintenance:` entry. Empty `sites` means every site."""

    name: str = ""
    sites: tuple[str, ...] = ()
    reason: str = ""
    start: Instant | None = None
    end: Instant | None = None
    days: tuple[str, ...] = ()
    time: str | None = None
    duration: Duration | None = None
    timezone: str = "UTC"

    def check(self) -> Iterator[tuple[str, str]]:
        one_off = self.start is not None or self.end is not None
        recurring = self.time is not None or self.duration is not None or bool(self.days)
        if one_off and recurring:
            yield "", "a window is either one-off (start, end) or recurring (days, time, duration), not both"
        elif one_off:
            yield from self._check_one_off()
        elif recurring:
            yield from self._check_recurring()
        else:
            yield "", "needs start and end (one-off) or time and duration (recurring)"

    def _check_one_off(self) -> Iterator[tuple[str, str]]:
        if self.start is None or self.end is None:
            yield ("end" if self.start is not None else "start"), "is required for a one-off window"
        elif self.end <= self.start:
            yield "end", "must be after start"

    def _check_recurring(self) -> Iterator[tuple[str, str]]:
        if self.time is None or not _TIME.match(self.time):
            yield "time", f"expected a local time HH:MM, got {self.time!r}"
        if self.duration is None or self.duration <= 0:
            yield "duration", "is required for a recurring window and must be longer than 0s"
        elif self.duration > 7 * 86400:
            yield "duration", "must not be longer than 7d"
        for day in self.days:
            if day.lower()[:3] not in DAYS:
                yield "days", f"unknown day {day!r}; use {', '.join(DAYS)}"
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield "timezone", f"unknown IANA time zone {self.timezone!r}"

    def covers(self, site: str) -> bool:
        return not self.sites or site in self.sites or GLOBAL in self.sites

    def active_at(self, t: float) -> tuple[float, float] | None:
        """(start, end) of the occurrence covering t, or None."""
        if self.start is not None and self.end is not None:
            return (self.start, self.end) if self.start <= t < self.end else None
        return _recurring(self, t)


def _recurring(w: MaintenanceWindow, t: float) -> tuple[float, float] | None:
    if w.time is None or w.duration is None:
        return None
    zone = ZoneInfo(w.timezone)
    hour, minute = (int(x) for x in w.time.split(":"))
    days = {d.lower()[:3] for d in w.days} or set(DAYS)
    local = datetime.fromtimestamp(t, zone).date()
    for back in range(math.ceil(w.duration / 86400) + 1):
        day = local - timedelta(days=back)
        if DAYS[day.weekday()] not in days:
            continue
        start = datetime.combine(day, time(hour, minute), tzinfo=zone).timestamp()
        if start <= t < start + w.duration:
            return start, start + w.duration
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """A runtime silence of one site (or GLOBAL) made through the API."""

    id: str
    site: str
    by: str
    reason: str
    created_at: float
    until: float

    def active(self, t: float) -> bool:
        return self.created_at <= t < self.until

    def covers(self, site: str) -> bool:
        return self.site in (site, GLOBAL)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "site": self.site,
            "by": self.by,
            "reason": self.reason,
            "from": rfc3339(self.created_at),
            "until": rfc3339(self.until),
        }

    def to_record(self) -> dict[str, Any]:
        return {**self.to_json(), "created_ts": self.created_at, "until_ts": self.until}

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> Silence:
        return cls(
            id=doc["id"],
            site=doc["site"],
            by=doc["by"],
            reason=doc.get("reason", ""),
            created_at=float(doc["created_ts"]),
            until=float(doc["until_ts"]),
        )


@dataclass(slots=True)
class Maintenance:
    """Configured windows plus live silences; `is_silenced` is the engine's hook."""

    windows: tuple[MaintenanceWindow, ...] = ()
    silences: list[Silence] | None = None

    def why(self, site: str, t: float) -> str | None:
        """A sentence naming the window or silence that covers `site` at `t`, or None."""
        for s in self.silences or ():
            if s.covers(site) and s.active(t):
                return f"silenced by @{s.by} until {rfc3339(s.until)}: {s.reason}".rstrip(": ")
        for w in self.windows:
            if w.covers(site):
                span = w.active_at(t)
                if span is not None:
                    label = w.name or w.reason or "maintenance window"
                    return f"{label} until {rfc3339(span[1])}"
        return None

    def is_silenced(self, site: str, t: float) -> bool:
        return self.why(site, t) is not None

    def prune(self, t: float) -> list[Silence]:
        """Drop expired silences; return what is left."""
        self.silences = [s for s in self.silences or () if s.until > t]
        return self.silences


def unknown_sites(windows: Sequence[MaintenanceWindow], sites: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """(window index, site index, site) for each site a window names that is not configured."""
    known = set(sites)
    for wi, w in enumerate(windows):
        for si, site in enumerate(w.sites):
            if site != GLOBAL and site not in known:
                yield wi, si, site


def silence_duration(value: float | str) -> float:
    """Seconds from a number or a duration string like `2h`; ValueError if not in (0, 7d]."""
    seconds = float(Duration.parse(value)) if isinstance(value, str) else float(value)
    if not 0 < seconds <= 7 * 86400:
        raise ValueError("duration must be longer than 0s and at most 7d")
    return seconds
