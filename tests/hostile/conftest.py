"""Hostile-world fixtures: chaos targets, and the real engine's probe path pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from monitor.clock import SystemClock
from monitor.config import parse_config
from monitor.engine import Engine
from monitor.results import ProbeResult
from monitor.store.sqlite import SqliteStore

from .chaos import ChaosServer, chaos_server

RunCheck = Callable[..., Awaitable[ProbeResult]]


@pytest.fixture
async def chaos() -> AsyncIterator[ChaosServer]:
    async with chaos_server() as server:
        yield server


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def run_check(tmp_path: Path) -> AsyncIterator[RunCheck]:
    """Probe one check once through Engine.run_probe: the engine's session, timeout and classification."""
    engines: list[Engine] = []

    async def run(check_yaml: str, *, limit: str = "2s") -> ProbeResult:
        text = (
            "version: 1\n"
            f"defaults: {{interval: 30s, timeout: {limit}}}\n"
            "sites:\n  - name: target\n    checks:\n"
            f"      - {check_yaml}\n"
        )
        config = parse_config(text, str(tmp_path / "sites.yaml"), {})
        if not engines:
            engine = Engine(config, SqliteStore("sqlite:///:memory:"), clock=SystemClock())
            await engine.store.open()
            engine.session = engine.new_session()
            engines.append(engine)
        return await engines[0].run_probe(config.checks[0])

    yield run
    for engine in engines:
        assert engine.session is not None
        await engine.session.close()
        await engine.store.close()
