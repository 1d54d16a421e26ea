"""What a probe returns: frozen values, no behaviour beyond small derived properties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Severity(StrEnum):
    SEV1 = "SEV-1"
    SEV2 = "SEV-2"
    SEV3 = "SEV-3"
    SEV4 = "SEV-4"

    @property
    def rank(self) -> int:
        """1 for SEV-1 (worst) … 4 for SEV-4."""
        return int(self.value[-1])

    @classmethod
    def worst(cls, a: Severity, b: Severity) -> Severity:
        return a if a.rank <= b.rank else b


class FailureKind(StrEnum):
    """Why a probe failed; a metric label and a sentence in reports, never a traceback."""

    DNS = "dns"
    REFUSED = "refused"
    RESET = "reset"
    TIMEOUT = "timeout"
    TLS = "tls"
    TOO_LARGE = "too_large"
    BAD_STATUS = "bad_status"
    ASSERTION = "assertion"
    INVALID_JSON = "invalid_json"
    REDIRECT = "redirect"
    PROTOCOL = "protocol"
    SLOW = "slow"
    CERT = "cert"
    AUTH = "auth"
    ANOMALY = "anomaly"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing a probe found wrong, already pointed at the condition it feeds.

    `summary` completes the sentence "<site>: …", e.g. "https://x.example/ answered 503".
    `evidence` is safe to show (secrets already fingerprinted); it lands on the timeline.
    """

    condition: str
    kind: FailureKind
    summary: str
    severity: Severity | None = None
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "kind": self.kind.value,
            "summary": self.summary,
            "severity": self.severity.value if self.severity else None,
            "evidence": list(self.evidence),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Problem:
        return cls(
            condition=doc["condition"],
            kind=FailureKind(doc["kind"]),
            summary=doc["summary"],
            severity=Severity(doc["severity"]) if doc.get("severity") else None,
            evidence=tuple(doc.get("evidence", ())),
        )


_EMPTY: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """One probe of one check. `problems` empty means the check passed."""

    duration: float
    problems: tuple[Problem, ...] = ()
    status_code: int | None = None
    phases: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    cert_expires_at: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "duration": self.duration,
            "problems": [p.to_json() for p in self.problems],
            "status_code": self.status_code,
            "phases": dict(self.phases),
            "cert_expires_at": self.cert_expires_at,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProbeResult:
        return cls(
            duration=doc["duration"],
            problems=tuple(Problem.from_json(p) for p in doc["problems"]),
            status_code=doc["status_code"],
            phases=doc["phases"],
            cert_expires_at=doc["cert_expires_at"],
            detail=doc["detail"],
        )

    @property
    def result_label(self) -> str:
        """`ok` or the first problem's failure kind: the `result` label of monitor_probes_total."""
        return self.problems[0].kind.value if self.problems else "ok"
