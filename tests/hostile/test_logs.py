"""Structured logs: one JSON object per line (orjson) with the context fields; readable lines on a TTY."""

from __future__ import annotations

import io
import logging
import sys

import orjson
import pytest

from monitor import logs


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("monitor.engine", logging.ERROR, __file__, 1, "incident opened: %s", ("shop down",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_line_has_timestamp_level_event_and_context() -> None:
    """ts (RFC 3339 UTC), level, event and the site/check/incident fields, on one line."""
    line = logs.JsonFormatter().format(
        record(site="shop", check="http", incident="INCIDENT-20261125-SEV1-001", condition="production_down")
    )
    assert "\n" not in line
    doc = orjson.loads(line)
    assert doc["level"] == "error"
    assert doc["event"] == "incident opened: shop down"
    assert doc["site"] == "shop"
    assert doc["check"] == "http"
    assert doc["incident"] == "INCIDENT-20261125-SEV1-001"
    assert doc["ts"].endswith("Z")
    assert "T" in doc["ts"]


def test_json_line_survives_exceptions_and_odd_values() -> None:
    """A traceback stays inside the one JSON line; values orjson cannot encode become strings."""
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        rec = record(site=object())
        rec.exc_info = sys.exc_info()
    doc = orjson.loads(logs.JsonFormatter().format(rec))
    assert "ValueError: boom" in doc["error"]
    assert isinstance(doc["site"], str)


@pytest.mark.parametrize(
    ("tty", "fmt", "json_out"), [(False, "auto", True), (True, "auto", False), (True, "json", True)]
)
def test_human_on_a_tty_json_otherwise(monkeypatch: pytest.MonkeyPatch, tty: bool, fmt: str, json_out: bool) -> None:
    """`auto` picks human lines on a terminal and JSON lines elsewhere; an explicit format wins."""

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    stream = Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("INFO", fmt)
        logging.getLogger("monitor.engine").warning("condition tripped", extra={"site": "shop", "check": "http"})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = stream.getvalue().strip().splitlines()[-1]
    if json_out:
        assert orjson.loads(line)["site"] == "shop"
    else:
        assert "WARNING" in line
        assert "condition tripped" in line
        assert "site=shop" in line
