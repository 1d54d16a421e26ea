"""The tls probe: days left on the served certificate; expired or untrusted means down."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from monitor.clock import SystemClock
from monitor.probes import ProbeContext
from monitor.probes.tls import TlsCheck, probe_tls
from monitor.results import FailureKind, Severity

from .test_probe_http import MemoryState

CA = trustme.CA()


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    runners: list[web.AppRunner] = []

    async def start(days: float, host: str = "localhost") -> str:
        now = datetime.now(UTC)
        cert = CA.issue_cert(host, not_before=now - timedelta(days=30), not_after=now + timedelta(days=days))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        app = web.Application()

        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app.router.add_get("/", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"https://localhost:{port}/"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    CA.cert_pem.write_to_path(str(path))
    return str(path)


async def run(url: str, ca_file: str | None, **kw: int) -> object:
    async with aiohttp.ClientSession() as session:
        ctx = ProbeContext(site="s", check="tls", timeout=3, session=session, clock=SystemClock(), state=MemoryState())
        return await probe_tls(TlsCheck(url=url, ca_file=ca_file, **kw), ctx)  # type: ignore[arg-type]


async def test_healthy_certificate_reports_expiry(https_server, ca_file: str) -> None:
    """90 days left: no problem, and the expiry timestamp is recorded for the metric."""
    result = await run(await https_server(90), ca_file)
    assert result.ok and result.cert_expires_at is not None  # type: ignore[attr-defined]


async def test_inside_warn_days_is_sev3_cert_expiry(https_server, ca_file: str) -> None:
    """10 days left with warn_days 14: cert_expiry at SEV-3."""
    (problem,) = (await run(await https_server(10), ca_file)).problems  # type: ignore[attr-defined]
    assert (problem.condition, problem.severity) == ("cert_expiry", Severity.SEV3)


async def test_inside_critical_days_is_sev2(https_server, ca_file: str) -> None:
    """2 days left with critical_days 3: cert_expiry at SEV-2."""
    (problem,) = (await run(await https_server(2), ca_file)).problems  # type: ignore[attr-defined]
    assert (problem.condition, problem.severity) == ("cert_expiry", Severity.SEV2)


async def test_expired_certificate_is_production_down(https_server, ca_file: str) -> None:
    """An expired certificate: browsers refuse the site, so production_down."""
    (problem,) = (await run(await https_server(-1), ca_file)).problems  # type: ignore[attr-defined]
    assert problem.condition == "production_down" and problem.kind is FailureKind.TLS
    assert "expired" in problem.summary


async def test_untrusted_certificate_is_production_down(https_server) -> None:
    """A certificate from an unknown CA fails verification: production_down, kind tls."""
    (problem,) = (await run(await https_server(90), None)).problems  # type: ignore[attr-defined]
    assert problem.condition == "production_down" and problem.kind is FailureKind.TLS
