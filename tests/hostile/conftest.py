"""Hostile-world fixtures: chaos targets, and the real engine's probe path pointed at them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from monitor.api import create_app
from monitor.clock import SystemClock
from monitor.config import parse_config
from monitor.engine import Engine
from monitor.results import FailureKind, ProbeResult, Problem
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


# -- a live engine + API in a thread, for clients that block (hypothesis, schemathesis, raw sockets) --

RESPONDER = "hostile-responder-token-0123456789"
OWNER = "hostile-owner-token-9876543210abcd"

LIVE_CONFIG = f"""
version: 1
monitor:
  tokens: {{responder: {RESPONDER}, owner: {OWNER}}}
people:
  owen: {{name: Owen}}
  derek: {{name: Derek}}
  jonny: {{name: Jonny}}
conditions:
  production_down: {{first_responders: [owen, derek], escalation: [jonny]}}
sites:
  - name: shop
    checks:
      - {{type: http, url: "http://127.0.0.1:9/"}}
  - name: blog
    checks:
      - {{type: http, url: "http://127.0.0.1:9/blog"}}
"""


class LiveApi:
    """`create_app(engine)` served on 127.0.0.1 from its own event loop thread, with open incidents."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-api", daemon=True)
        self.base = ""
        self.incidents: list[str] = []

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> LiveApi:
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        config = parse_config(LIVE_CONFIG, str(self.folder / "sites.yaml"), {})
        self.engine = Engine(config, SqliteStore("sqlite:///monitor.db", base_dir=str(self.folder)))
        await self.engine.start(schedule=False)
        await self.open_incidents()
        self.runner = web.AppRunner(create_app(self.engine), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def open_incidents(self) -> None:
        """A SEV-1 production_down on each site (three failing probes each)."""
        down = Problem(condition="production_down", kind=FailureKind.REFUSED, summary="refused the connection")
        for check in self.engine.config.checks:
            for _ in range(check.failure_threshold):
                await self.engine.handle_result(check, ProbeResult(duration=0.01, problems=(down,)))
        self.incidents = [i.id for i in self.engine.open_incidents()]

    def stop(self) -> None:
        async def _stop() -> None:
            await self.runner.cleanup()
            await self.engine.stop()

        self.call(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    api = LiveApi(tmp_path_factory.mktemp("live")).start()
    yield api
    api.stop()
