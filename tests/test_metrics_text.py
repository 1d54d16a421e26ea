"""/metrics writes the per-check families directly; the text is generate_latest's, byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.clock import FakeClock
from monitor.config import Config
from monitor.metrics import EngineCollector, exposition
from monitor.results import FailureKind, ProbeResult, Problem

CONFIG = """
version: 1
monitor: {{listen: 127.0.0.1:9400, store: "sqlite:///./m.db", workspace: .}}
sites:
{sites}
"""


def sites(n: int) -> str:
    return "\n".join(
        f"  - {{name: site-{i}, client: c, checks: [{{type: http, url: 'http://127.0.0.1:9/{i}', name: web{i % 3}}}]}}"
        for i in range(n)
    )


def reference(collector: EngineCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


async def test_fast_text_equals_generate_latest(config_from: Callable[..., Config], engine_for: Any) -> None:
    """Passing, failing, slow, huge-count and never-probed checks render exactly as prometheus_client would."""
    clock = FakeClock()
    engine = await engine_for(config_from(CONFIG.format(sites=sites(6))), clock)
    checks = engine.config.checks
    down = Problem(condition="production_down", kind=FailureKind.BAD_STATUS, summary="answered 503")
    await engine.handle_result(checks[0], ProbeResult(duration=0.012, status_code=200))
    await engine.handle_result(checks[1], ProbeResult(duration=7.5, status_code=503, problems=(down,)))
    await engine.handle_result(checks[2], ProbeResult(duration=0.3, cert_expires_at=1_893_456_000.0))
    for _ in range(4):
        await engine.handle_result(checks[3], ProbeResult(duration=12.0, status_code=503, problems=(down,)))
    engine.telemetry.probes[(checks[4].site, checks[4].name, "ok")] = 12_345_678
    collector = EngineCollector(engine)
    assert exposition(collector) == reference(collector)


async def test_the_text_parses_with_every_check(config_from: Callable[..., Config], engine_for: Any) -> None:
    """300 probed checks: each family has one sample per check (11 for the histogram)."""
    engine = await engine_for(config_from(CONFIG.format(sites=sites(300))))
    for check in engine.config.checks:
        await engine.handle_result(check, ProbeResult(duration=0.05, status_code=200))
    text = exposition(EngineCollector(engine)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(families["monitor_probe_success"].samples) == 300
    assert len(families["monitor_probe_duration_seconds"].samples) == 300 * 11
    assert len(families["monitor_site_maintenance"].samples) == 300
