"""What a probe returns: frozen values, no behaviour beyond small derived properties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


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

    @property
    def result_label(self) -> str:
        """`ok` or the first problem's failure kind: the `result` label of monitor_probes_total."""
        return self.problems[0].kind.value if self.problems else "ok"
