"""Replicas against a real PostgreSQL: the same server fixture as the store suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))

from pgserver import postgres_url

postgres_server = pytest.fixture(scope="session")(postgres_url)
