"""Shared fixtures: real aiohttp targets on 127.0.0.1, configs from text, engines on a fake clock."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.clock import FakeClock
from monitor.config import Config, parse_config
from monitor.engine import Engine
from monitor.store.sqlite import SqliteStore


@dataclass
class Target:
    """A scriptable website: set status, body, headers and delay; counts hits."""

    url: str = ""
    status: int = 200
    body: str = "<html>Add to cart</html>"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hits: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text=self.body, headers=self.headers, content_type=None)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", t.handle)
    runner, base = await serve(app)
    t.url = base + "/"
    yield t
    await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config_from(tmp_path: Path) -> Callable[..., Config]:
    """Parse YAML text as if it were <tmp_path>/sites.yaml (workspace = tmp_path)."""

    def make(text: str, env: dict[str, str] | None = None) -> Config:
        path = tmp_path / "sites.yaml"
        path.write_text(text)
        return parse_config(text, str(path), env or {})

    return make


@pytest.fixture
async def engine_for(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start engines (no scheduler) on a FakeClock and a SQLite file in tmp_path; stop them after."""
    engines: list[Engine] = []

    async def make(config: Config, clock: FakeClock | None = None, db: str = "monitor.db") -> Engine:
        store = SqliteStore(f"sqlite:///{db}", base_dir=str(tmp_path))
        engine = Engine(config, store, clock=clock or FakeClock())
        await engine.start(schedule=False)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        if engine.ready:
            await engine.stop()
