"""Self-connectivity guard: when every canary is unreachable the prober is offline, not the sites."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from monitor.clock import FakeClock
from monitor.config import Config
from monitor.engine import Engine
from monitor.metrics import EngineCollector
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.rules import UNREACHABLE_KINDS, blind, connectivity_ok

from ..conftest import free_port
from .chaos import start_app


def failing(kind: FailureKind, condition: str = "production_down") -> ProbeResult:
    return ProbeResult(duration=1.0, problems=(Problem(condition=condition, kind=kind, summary=f"x {kind}"),))


def test_connectivity_is_lost_only_when_every_canary_fails() -> None:
    """No canaries: always online. Some reached: online. None reached: offline."""
    assert connectivity_ok([])
    assert connectivity_ok([False, True])
    assert not connectivity_ok([False, False])


@pytest.mark.parametrize("kind", sorted(UNREACHABLE_KINDS))
def test_unreachable_failures_are_blind_only_while_offline(kind: FailureKind) -> None:
    """dns/refused/timeout/reset/tls on production_down are not judged while offline, judged while online."""
    assert blind(failing(kind), online=False)
    assert not blind(failing(kind), online=True)


@pytest.mark.parametrize(
    "result",
    [
        failing(FailureKind.BAD_STATUS),  # the site answered: that is real
        failing(FailureKind.REFUSED, "api_failure"),
        failing(FailureKind.ASSERTION, "api_failure"),
        ProbeResult(duration=0.1),
    ],
)
def test_answers_are_judged_even_while_offline(result: ProbeResult) -> None:
    """Only unreachable-class production_down failures are suppressed."""
    assert not blind(result, online=False)


@dataclass
class Canary:
    url: str = ""
    down: bool = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            assert request.transport is not None
            request.transport.abort()  # the connection dies: unreachable
        return web.Response(text="ok")


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    c = Canary()
    app = web.Application()
    app.router.add_get("/", c.handle)
    runner, port = await start_app(app)
    c.url = f"http://127.0.0.1:{port}/"
    yield c
    await runner.cleanup()


CONFIG = """
version: 1
monitor:
  canaries: ["{canary}", "http://127.0.0.1:{dead}/"]
defaults: {{interval: 30s, timeout: 2s, failure_threshold: 3, success_threshold: 2}}
sites:
  - name: shop
    checks:
      - {{type: http, url: "http://127.0.0.1:{dead}/"}}
"""


def scrape(engine: Engine) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine))
    return generate_latest(registry).decode()


async def test_offline_prober_opens_one_monitor_offline_not_production_down(
    canary: Canary, config_from: Callable[..., Config], engine_for: Callable[..., Any]
) -> None:
    """All canaries down: refused sites trip nothing, one SEV-2 monitor_offline opens, gauge 0; back: resolved."""
    clock = FakeClock()
    engine: Engine = await engine_for(config_from(CONFIG.format(canary=canary.url, dead=free_port())), clock)
    (check,) = engine.config.checks
    assert "monitor_connectivity_ok 1.0" in scrape(engine)
    canary.down = True
    for _ in range(5):
        assert await engine.check_canaries() is False
        result = await engine.run_probe(check)
        assert result.problems[0].kind is FailureKind.REFUSED
        await engine.handle_result(check, result)
        await clock.advance(30)
    (incident,) = engine.open_incidents()
    assert (incident.condition, incident.severity) == ("monitor_offline", Severity.SEV2)
    assert "monitor_connectivity_ok 0.0" in scrape(engine)
    assert not engine.halt.halted  # monitor_offline does not halt deploys

    canary.down = False
    for _ in range(2):
        assert await engine.check_canaries() is True
        await clock.advance(30)
    assert engine.open_incidents() == []
    assert "monitor_connectivity_ok 1.0" in scrape(engine)
    for _ in range(3):  # online again: the same refusals are the site's fault now
        await engine.handle_result(check, await engine.run_probe(check))
    (incident,) = engine.open_incidents()
    assert incident.condition == "production_down"
    opened = await engine.store.list_incidents("all")
    assert sorted(i.condition for i in opened) == ["monitor_offline", "production_down"]


def test_canaries_must_be_urls(config_from: Callable[..., Config]) -> None:
    """`monitor.canaries` takes http(s) URLs; anything else is a config error naming the key."""
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        config_from("version: 1\nmonitor: {canaries: [not-a-url]}\nsites: []\n")
    assert "monitor.canaries[0]" in str(err.value)
    assert config_from("version: 1\nmonitor: {canaries: ['http://127.0.0.1:1/']}\n").monitor.canaries
