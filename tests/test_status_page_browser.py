"""The status page in a real headless Chromium: halt banner and incident visible, then all clear."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from monitor.api import create_app
from monitor.clock import FakeClock

from .test_engine import CONFIG, DOWN, UP, feed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS_IMG = Path(__file__).parent.parent / "docs" / "img"

pytestmark = [
    pytest.mark.needs_binary,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]


async def chromium(*args: str, profile: Path) -> str:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    return out.decode()


async def test_status_page_during_an_incident_and_after_recovery(engine_for, config_from, tmp_path: Path) -> None:
    """During the incident the DOM shows HALTED and the incident; after recovery, all clear. Screenshots saved."""
    clock = FakeClock()
    engine = await engine_for(config_from(CONFIG), clock)
    server = TestServer(create_app(engine), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/"))
    try:
        await feed(engine, clock, [UP] * 5 + [DOWN] * 3)
        (incident,) = engine.open_incidents()
        dom = await chromium("--dump-dom", url, profile=tmp_path / "p1")
        assert 'id="halt-banner">HALTED' in dom
        assert incident.id in dom and "@owen" in dom and "SEV-1" in dom
        phone = tmp_path / "status-incident-phone.png"
        desktop = tmp_path / "status-incident.png"
        await chromium(
            f"--screenshot={phone}", "--window-size=412,915", "--hide-scrollbars", url, profile=tmp_path / "p2"
        )
        await chromium(
            f"--screenshot={desktop}", "--window-size=1100,900", "--hide-scrollbars", url, profile=tmp_path / "p3"
        )
        assert phone.stat().st_size > 5000 and desktop.stat().st_size > 5000

        await feed(engine, clock, [UP, UP])
        dom = await chromium("--dump-dom", url, profile=tmp_path / "p4")
        assert "All clear" in dom and incident.id not in dom
        if os.environ.get("MONITOR_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copy(desktop, DOCS_IMG / "status-page.png")
            shutil.copy(phone, DOCS_IMG / "status-page-phone.png")
    finally:
        await server.close()
