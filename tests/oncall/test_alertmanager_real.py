"""Against a real Alertmanager binary on 127.0.0.1: the incident's alert fires, then resolves."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.clock import SystemClock, parse_rfc3339
from tests.conftest import free_port
from tests.oncall.conftest import fail_site, flush, recover_site

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = [
    pytest.mark.needs_binary,
    pytest.mark.skipif(BINARY is None, reason="no Alertmanager binary: apt-get install -y prometheus-alertmanager"),
]

AM_CONFIG = """
route: {receiver: "null", group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: "null"}]
"""

CONFIG = """
version: 1
defaults: {{interval: 10s, timeout: 5s, failure_threshold: 1, success_threshold: 1}}
people:
  oncall: {{name: On-call, notify: [am]}}
channels:
  am: {{type: alertmanager, url: "{url}", resend_interval: 1m}}
conditions:
  production_down: {{first_responders: [oncall]}}
sites:
  - name: acme-shop
    checks: [{{type: http, url: "http://acme-shop.example/"}}]
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    assert BINARY is not None
    port = free_port()
    (tmp_path / "am.yml").write_text(AM_CONFIG)
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def ready(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("Alertmanager did not become ready in 20 s")


async def alerts(url: str, incident: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/v2/alerts") as resp:
        assert resp.status == 200
        return [a for a in await resp.json() if a["labels"].get("incident") == incident]


@pytest.fixture
async def am_url(alertmanager: str) -> AsyncIterator[str]:
    await ready(alertmanager)
    return alertmanager


async def test_real_alertmanager_sees_the_alert_fire_and_resolve(start_engine, config_from, am_url) -> None:
    """Opened: an active MonitorIncident alert with our labels; resolved: it is no longer active."""
    engine = await start_engine(config_from(CONFIG.format(url=am_url)), SystemClock())
    iid = await fail_site(engine, "acme-shop")
    await flush(engine)
    (alert,) = await alerts(am_url, iid)
    assert alert["status"]["state"] == "active"
    assert alert["labels"] == {
        "alertname": "MonitorIncident",
        "incident": iid,
        "site": "acme-shop",
        "condition": "production_down",
        "severity": "SEV-1",
    }
    assert parse_rfc3339(alert["endsAt"]) > time.time() + 120  # kept alive by re-posting, not resolve_timeout
    await recover_site(engine, "acme-shop")
    await flush(engine)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = await alerts(am_url, iid)
        if not left or all(parse_rfc3339(a["endsAt"]) <= time.time() for a in left):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"alert still firing after resolve: {left}")
