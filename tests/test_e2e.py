"""End to end through the contract: a real `monitor run` subprocess against real local targets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Target, free_port

pytestmark = pytest.mark.slow

CONFIG = """
version: 1
monitor:
  listen: 127.0.0.1:{port}
  store: sqlite:///./state/monitor.db
  workspace: ./ws
  tokens: {{responder: e2e-responder-token-123, owner: e2e-owner-token-123}}
defaults: {{interval: 300ms, timeout: 250ms, failure_threshold: 3, success_threshold: 2}}
people:
  owen: {{name: Owen}}
  derek: {{name: Derek}}
conditions:
  production_down: {{first_responders: [owen, derek]}}
sites:
  - name: acme-shop
    client: acme
    checks:
      - type: http
        url: {url}
        expect: {{status: 200, body_contains: "Add to cart"}}
"""


class Monitor:
    """A `monitor run` subprocess and small helpers to ask it things."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "monitor.log"

    def start(self) -> None:
        env = {**os.environ, "MONITOR_LOG_FORMAT": "json"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(self.folder / "sites.yaml")],
            cwd=self.folder,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=5) as resp:
            body = resp.read()
            return json.loads(body) if resp.headers.get_content_type() == "application/json" else body.decode()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args, "-c", str(self.folder / "sites.yaml")],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(30)
        return self.proc.returncode


async def until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until predicate() is truthy (errors count as not yet); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = await asyncio.to_thread(predicate)
            if value:
                return value
        except OSError:
            pass
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
async def monitor(folder: Path, target: Target) -> AsyncIterator[Monitor]:
    port = free_port()
    (folder / "sites.yaml").write_text(CONFIG.format(port=port, url=target.url))
    m = Monitor(folder, port)
    m.start()
    yield m
    if m.proc and m.proc.poll() is None:
        m.proc.kill()
        m.proc.wait(10)


def open_incidents(m: Monitor) -> list[dict[str, Any]]:
    return m.get("/api/v1/incidents?status=open")["incidents"]


CHATROOM = re.compile(
    r"\[TASK_ID\]: (INCIDENT-\d{8}-SEV1-\d{3})\n"
    r"\[CURRENT_STATE\]: BLOCKED\n"
    r"\[PAYLOAD_PATH\]: \.tmp/incidents/\1\.md\n"
    r"\[NEXT_HOP\]: @owen\n"
    r"\n"
    r"\*\*INCIDENT REPORT\*\*\n"
    r"\n"
    r"- \*\*Severity\*\*: SEV-1\n"
    r"- \*\*Description\*\*: acme-shop: http://127\.0\.0\.1:\d+/ answered 503 on 3 consecutive probes\n"
    r"- \*\*Impact\*\*: production site down; halt condition production_down is active\n"
    r"- \*\*First Responder\*\*: @owen\n"
    r"- \*\*Status\*\*: INVESTIGATING\n"
)


async def test_site_goes_503_then_recovers(monitor: Monitor, target: Target, folder: Path) -> None:
    """503 -> one SEV-1 production_down incident, halted everywhere; 200 -> auto-resolved, halt cleared."""
    await until(lambda: monitor.get("/readyz"), "readiness")
    await until(lambda: monitor.get("/api/v1/status")["sites"][0]["checks"][0]["last_result"], "a first probe")
    assert monitor.cli("halt-status").returncode == 0

    target.status = 503
    (incident,) = await until(lambda: open_incidents(monitor), "the incident to open")
    assert (incident["condition"], incident["severity"], incident["status"]) == (
        "production_down",
        "SEV-1",
        "INVESTIGATING",
    )
    assert incident["halt"] is True and incident["first_responder"] == "owen"

    halt = monitor.get("/api/v1/halt")
    assert halt["halted"] is True and halt["incidents"] == [incident["id"]]
    halt_file = json.loads((folder / "ws" / ".tmp" / "HALT").read_text())
    assert halt_file["conditions"] == ["production_down"] and halt_file["incidents"] == [incident["id"]]
    status = monitor.cli("halt-status")
    assert status.returncode == 1 and "production_down" in status.stdout
    assert 'monitor_halt_active{condition="production_down"} 1.0' in monitor.get("/metrics")
    chatroom = (folder / "ws" / "chatroom.md").read_text()
    assert CHATROOM.fullmatch(chatroom.strip() + "\n"), chatroom
    report = folder / "ws" / ".tmp" / "incidents" / f"{incident['id']}.md"
    assert "- **Status**: INVESTIGATING" in report.read_text()

    await asyncio.sleep(1.5)  # more failing probes join the same incident
    assert [i["id"] for i in open_incidents(monitor)] == [incident["id"]]

    target.status = 200
    await until(lambda: not open_incidents(monitor), "auto-resolution")
    resolved = monitor.get(f"/api/v1/incidents/{incident['id']}")
    assert resolved["status"] == "RESOLVED" and resolved["resolved_at"].endswith("Z")
    assert "## Post-incident" in report.read_text() and "### Root Cause Analysis" in report.read_text()
    assert not (folder / "ws" / ".tmp" / "HALT").exists()
    assert monitor.cli("halt-status").returncode == 0
    assert 'monitor_halt_active{condition="production_down"} 0.0' in monitor.get("/metrics")
    assert monitor.stop() == 0


async def test_kill_9_and_restart_keeps_the_incident_and_the_halt(
    monitor: Monitor, target: Target, folder: Path
) -> None:
    """kill -9 mid-incident: after restart the same incident is open, halt still active, no duplicate."""
    await until(lambda: monitor.get("/readyz"), "readiness")
    target.status = 503
    (incident,) = await until(lambda: open_incidents(monitor), "the incident to open")
    monitor.kill9()
    assert (folder / "ws" / ".tmp" / "HALT").exists()
    assert monitor.cli("halt-status").returncode == 1, "a dead engine with a HALT file still gates deploys"

    monitor.start()
    await until(lambda: monitor.get("/readyz"), "readiness after restart")
    assert monitor.get("/api/v1/halt")["halted"] is True
    await asyncio.sleep(1.5)  # failures continue after the restart
    assert [i["id"] for i in open_incidents(monitor)] == [incident["id"]]
    assert len(monitor.get("/api/v1/incidents?status=all")["incidents"]) == 1
    assert (folder / "ws" / "chatroom.md").read_text().count(incident["id"] + "\n") == 1

    target.status = 200
    await until(lambda: not open_incidents(monitor), "auto-resolution after restart")
    assert monitor.cli("halt-status").returncode == 0
    assert monitor.stop() == 0


async def test_ack_and_resolve_through_the_cli(monitor: Monitor, target: Target) -> None:
    """`monitor incidents ack/resolve` act through the API with the responder token."""
    await until(lambda: monitor.get("/readyz"), "readiness")
    target.status = 500
    (incident,) = await until(lambda: open_incidents(monitor), "the incident to open")
    os.environ["MONITOR_RESPONDER_TOKEN"] = "wrong"
    try:
        refused = monitor.cli("incidents", "ack", incident["id"], "--by", "owen")
        assert refused.returncode == 1 and "401" in refused.stderr
        os.environ["MONITOR_RESPONDER_TOKEN"] = "e2e-responder-token-123"
        acked = monitor.cli("incidents", "ack", incident["id"], "--by", "owen")
        assert acked.returncode == 0 and "MITIGATING" in acked.stdout
        done = monitor.cli("incidents", "resolve", incident["id"], "--by", "owen", "--note", "restarted the pod")
        assert done.returncode == 0 and "RESOLVED" in done.stdout
    finally:
        os.environ.pop("MONITOR_RESPONDER_TOKEN", None)
    listed = monitor.cli("incidents", "list", "--status", "all")
    assert incident["id"] in listed.stdout
    assert monitor.stop() == 0


def test_halt_status_cannot_tell_when_nothing_answers(tmp_path: Path) -> None:
    """No engine and no HALT file: exit 2, saying why."""
    port = free_port()
    (tmp_path / "sites.yaml").write_text(CONFIG.format(port=port, url="http://127.0.0.1:1/"))
    m = Monitor(tmp_path, port)
    result = m.cli("halt-status")
    assert result.returncode == 2 and "cannot tell" in result.stderr
