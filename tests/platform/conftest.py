"""Probe contexts on a real aiohttp session, with the fakes running on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from monitor.clock import Clock, FakeClock
from monitor.fakes.statuspage import FakeStatuspage
from monitor.fakes.stripe import FakeStripe
from monitor.fakes.supabase import FakeSupabase
from monitor.probes import ProbeContext


class MemoryState:
    """ProbeState in memory; values go through JSON like the real store's."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def get(self, key: str) -> Any:
        return self.data.get(key)

    async def put(self, key: str, value: Any) -> None:
        self.data[key] = orjson.loads(orjson.dumps(value))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeCtx = Callable[..., ProbeContext]


@pytest.fixture
def make_ctx(session: aiohttp.ClientSession, state: MemoryState, clock: FakeClock) -> MakeCtx:
    def make(
        *, timeout: float = 5.0, use_clock: Clock | None = None, use_state: MemoryState | None = None
    ) -> ProbeContext:
        return ProbeContext(
            site="acme",
            check="probe",
            timeout=timeout,
            session=session,
            clock=use_clock or clock,
            state=use_state or state,
        )

    return make


@pytest.fixture
async def stripe(clock: FakeClock) -> AsyncIterator[FakeStripe]:
    fake = FakeStripe(now=clock.now())
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def supabase() -> AsyncIterator[FakeSupabase]:
    fake = FakeSupabase()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def statuspage() -> AsyncIterator[FakeStatuspage]:
    fake = FakeStatuspage()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
