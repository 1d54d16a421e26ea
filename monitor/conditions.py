"""The built-in conditions of the emergency protocol and their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.results import Severity

PRODUCTION_DOWN = "production_down"
SECURITY_BREACH = "security_breach"
DATA_LOSS = "data_loss"
FINANCIAL_ERROR = "financial_error"
API_FAILURE = "api_failure"
DEPENDENCY_OUTAGE = "dependency_outage"
DEGRADED = "degraded"
CERT_EXPIRY = "cert_expiry"
MONITOR_OFFLINE = "monitor_offline"

HALT_CONDITIONS = (PRODUCTION_DOWN, SECURITY_BREACH, DATA_LOSS, FINANCIAL_ERROR)

# Ack deadline per severity before the next person in the chain is paged (None: never pages).
ACK_DEADLINE: dict[Severity, float | None] = {
    Severity.SEV1: 5 * 60.0,
    Severity.SEV2: 30 * 60.0,
    Severity.SEV3: 2 * 3600.0,
    Severity.SEV4: None,
}


@dataclass(frozen=True, slots=True)
class BuiltIn:
    severity: Severity
    halt: bool
    auto_resolve: bool
    impact: str
    escalate_immediately: bool = False


BUILT_INS: dict[str, BuiltIn] = {
    PRODUCTION_DOWN: BuiltIn(Severity.SEV1, True, True, "production site down"),
    SECURITY_BREACH: BuiltIn(Severity.SEV1, True, False, "security breach"),
    DATA_LOSS: BuiltIn(Severity.SEV1, True, False, "data loss"),
    FINANCIAL_ERROR: BuiltIn(Severity.SEV1, True, False, "financial error", True),
    API_FAILURE: BuiltIn(Severity.SEV2, False, True, "API failures"),
    DEPENDENCY_OUTAGE: BuiltIn(Severity.SEV2, False, True, "a platform dependency is down"),
    DEGRADED: BuiltIn(Severity.SEV3, False, True, "degraded service"),
    CERT_EXPIRY: BuiltIn(Severity.SEV3, False, True, "TLS certificate expiring"),
    MONITOR_OFFLINE: BuiltIn(Severity.SEV2, False, True, "the prober itself is offline"),
}
