"""The error tree. Everything monitor raises on purpose derives from MonitorError.

    MonitorError
    ├── ConfigError        sites.yaml is unusable; carries every ConfigIssue found
    ├── StoreError         the incident store cannot be opened, migrated or written
    │   └── StoreLocked    another process holds the store and did not let go in time
    ├── ApiError           an HTTP API call was refused (status + JSON message)
    └── DeliveryError      a notification channel refused a delivery for good

Probe failures are *not* exceptions: probes return a classified ProbeResult
(see results.py and probes/_errors.py), so one broken target never unwinds
the engine.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(MonitorError):
    """The config cannot be used. `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column))
        super().__init__("\n".join(str(i) for i in self.issues))


class StoreError(MonitorError):
    """The store failed; the message says which store and what happened."""


class StoreLocked(StoreError):
    """The store stayed locked by another process past the busy timeout."""


class ApiError(MonitorError):
    """An API request is refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class DeliveryError(MonitorError):
    """A channel refused a notification and retrying will not help."""
