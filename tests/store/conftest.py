"""Backends for the store contract suite: SQLite always, PostgreSQL when it can be had.

PostgreSQL comes from MONITOR_TEST_POSTGRES_URL (CI sets it with .ci/postgres.sh),
else from a throwaway cluster started here with Debian's binaries; each test gets
its own fresh database on it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pgserver import create_database, postgres_url

from monitor.store import Store, open_store

BACKENDS = ["sqlite", "postgres"]


postgres_server = pytest.fixture(scope="session")(postgres_url)


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty store of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/monitor.db"
    server: str = request.getfixturevalue("postgres_server")
    return await create_database(server)


StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture
async def make_store(store_url: str) -> AsyncIterator[StoreFactory]:
    """Opens a new Store on the same database each call (a restart); closes them all at the end."""
    opened: list[Store] = []

    async def make() -> Store:
        store = open_store(store_url)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        with contextlib.suppress(Exception):
            await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()
