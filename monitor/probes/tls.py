"""`type: tls` — days left on the certificate a site serves.

Inside `warn_days`: cert_expiry SEV-3; inside `critical_days`: SEV-2; expired or
failing verification: production_down (browsers refuse the site).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from monitor.conditions import CERT_EXPIRY, PRODUCTION_DOWN
from monitor.probes import ProbeContext, register
from monitor.probes._errors import classify
from monitor.redact import safe_url
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.schema import HttpUrl


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsCheck:
    url: HttpUrl
    warn_days: int = 14
    critical_days: int = 3
    server_name: str | None = None
    ca_file: str | None = None

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.url.startswith("https://"):
            yield "url", "a tls check needs an https:// URL"
        if self.critical_days < 0 or self.warn_days < self.critical_days:
            yield "warn_days", "must be at least critical_days (and both not negative)"


@register("tls", TlsCheck)
async def probe_tls(check: TlsCheck, ctx: ProbeContext) -> ProbeResult:
    where = safe_url(check.url)
    parts = urlsplit(check.url)
    host = parts.hostname or ""
    port = parts.port or 443
    context = ssl.create_default_context(cafile=check.ca_file)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(ctx.timeout):
            _, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=check.server_name or host
            )
        try:
            peer = writer.get_extra_info("ssl_object").getpeercert()
        finally:
            writer.close()
    except ssl.SSLCertVerificationError as exc:
        return _unverified(where, exc, loop.time() - start)
    except Exception as exc:  # classified; a probe never raises for the target's sake
        kind, sentence = classify(exc, timeout=ctx.timeout)
        problem = Problem(condition=PRODUCTION_DOWN, kind=kind, summary=f"{where} {sentence}")
        return ProbeResult(duration=loop.time() - start, problems=(problem,), detail=sentence)
    elapsed = loop.time() - start
    expires_at = ssl.cert_time_to_seconds(peer["notAfter"])
    days = (expires_at - ctx.clock.now()) / 86400
    problems = tuple(_expiry(check, where, expires_at, days))
    return ProbeResult(
        duration=elapsed,
        problems=problems,
        cert_expires_at=expires_at,
        detail=f"certificate valid for {days:.1f} more days",
    )


def _expiry(check: TlsCheck, where: str, expires_at: float, days: float) -> Iterator[Problem]:
    date = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d")
    if days <= 0:
        yield Problem(
            condition=PRODUCTION_DOWN,
            kind=FailureKind.CERT,
            summary=f"{where} serves a certificate that expired on {date}",
        )
    elif days <= check.critical_days:
        yield Problem(
            condition=CERT_EXPIRY,
            kind=FailureKind.CERT,
            severity=Severity.SEV2,
            summary=f"{where} serves a certificate that expires in {days:.1f} days ({date})",
        )
    elif days <= check.warn_days:
        yield Problem(
            condition=CERT_EXPIRY,
            kind=FailureKind.CERT,
            severity=Severity.SEV3,
            summary=f"{where} serves a certificate that expires in {days:.1f} days ({date})",
        )


def _unverified(where: str, exc: ssl.SSLCertVerificationError, elapsed: float) -> ProbeResult:
    reason = exc.verify_message or "verification failed"
    sentence = f"serves a certificate that failed verification: {reason}"
    if "expired" in reason:
        sentence = "serves an expired certificate"
    problem = Problem(condition=PRODUCTION_DOWN, kind=FailureKind.TLS, summary=f"{where} {sentence}")
    return ProbeResult(duration=elapsed, problems=(problem,), detail=sentence)
