"""/metrics of a replica: probe families carry its region, incident families only on the leader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import Config
from monitor.metrics import EngineCollector, exposition
from monitor.results import FailureKind, ProbeResult, Problem

CONFIG = """
version: 1
monitor: {listen: 127.0.0.1:9400, store: "sqlite:///./m.db", workspace: .}
defaults: {failure_threshold: 1}
sites:
  - name: shop
    checks:
      - {type: http, url: 'http://127.0.0.1:9/a', name: a}
      - {type: http, url: 'http://127.0.0.1:9/b', name: b}
"""
LEADER_ONLY = {
    "monitor_condition_active",
    "monitor_halt_active",
    "monitor_incidents_open",
    "monitor_incidents_opened",  # the parser drops _total
    "monitor_notifications",
    "monitor_notification_queue_depth",
}
DOWN = ProbeResult(
    duration=0.2,
    status_code=503,
    problems=(Problem(condition="production_down", kind=FailureKind.BAD_STATUS, summary="answered 503"),),
)


def families(engine: Any) -> dict[str, Any]:
    collector = EngineCollector(engine)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = exposition(collector)
    assert text == generate_latest(registry)  # the fast writer still matches prometheus_client
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


async def test_region_label_and_leader_only_families(config_from: Callable[..., Config], engine_for: Any) -> None:
    """With a region every probe sample carries it; a follower omits incident, halt, condition and
    notification families; per-check gauges come only from the replica that probes the check."""
    engine = await engine_for(config_from(CONFIG))
    a, b = engine.config.checks
    await engine.handle_result(a, DOWN)
    await engine.handle_result(b, ProbeResult(duration=0.1, status_code=200))

    alone = families(engine)  # no region, leader: exactly as before
    assert set(alone) >= LEADER_ONLY
    assert all("region" not in s.labels for s in alone["monitor_probes"].samples)

    engine.telemetry.region = "eu"
    engine.should_probe = lambda check: check.name == "b"  # `a` moved to another replica
    leader = families(engine)
    assert set(leader) >= LEADER_ONLY
    for name in ("monitor_probes", "monitor_probe_duration_seconds", "monitor_probe_success"):
        assert leader[name].samples
        assert {s.labels["region"] for s in leader[name].samples} == {"eu"}, name
    assert [s.labels["check"] for s in leader["monitor_probe_success"].samples] == ["b"]
    assert {s.labels["check"] for s in leader["monitor_probes"].samples} == {"a", "b"}  # counters keep counting

    engine.leading = lambda: False
    follower = families(engine)
    assert not LEADER_ONLY & set(follower)
    assert "monitor_probes" in follower
    assert "monitor_schedule_lag_seconds" in follower
