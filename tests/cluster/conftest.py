"""Replicas against a real PostgreSQL: the same server fixture as the store suite."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))

from pgserver import ENV, Throwaway, find_bindir, wait_ready


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get(ENV)
    if url:
        wait_ready(url)
        yield url
        return
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(f"no PostgreSQL binaries (apt-get install postgresql) and {ENV} is not set")
    server = Throwaway(bindir)
    try:
        yield server.start()
    finally:
        server.stop()
