"""Crash safety of a real `monitor run`: kill -9 at random points, SIGTERM drains, a bad store fails fast."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from ..conftest import free_port
from .chaos import start_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

CONFIG = """
version: 1
monitor:
  listen: 127.0.0.1:{port}
  store: sqlite:///./monitor.db
notifications: {{retry_initial: 200ms, retry_max: 1s, drain_timeout: 5s, group_threshold: 0}}
defaults: {{interval: 200ms, timeout: 150ms, failure_threshold: 2, success_threshold: 2}}
people:
  owen: {{name: Owen, notify: [hook]}}
  jonny: {{name: Jonny, notify: [hook]}}
channels:
  hook: {{type: webhook, url: "{base}/hook"}}
conditions:
  production_down: {{first_responders: [owen], escalation: [jonny], escalate_after: 1s}}
sites:
  - name: shop
    checks:
      - {{type: http, url: "{base}/shop"}}
  - name: blog
    checks:
      - {{type: http, url: "{base}/blog"}}
"""


class World:
    """Targets that go down and up on their own schedule, and the webhook receiver."""

    def __init__(self) -> None:
        self.down = {"/shop": False, "/blog": False}
        self.keys: Counter[str] = Counter()
        self.order: list[str] = []
        self.events: list[dict[str, object]] = []

    async def site(self, request: web.Request) -> web.Response:
        return web.Response(status=503 if self.down[request.path] else 200, text="Add to cart")

    async def hook(self, request: web.Request) -> web.Response:
        self.keys[request.headers["Idempotency-Key"]] += 1
        self.order.append(request.headers["Idempotency-Key"])
        self.events.append(orjson.loads(await request.read()))
        return web.json_response({"ok": True})

    async def weather(self, rng: random.Random) -> None:
        while True:  # slow enough not to flap: each state holds for many probes
            await asyncio.sleep(rng.uniform(2.5, 4.0))
            path = rng.choice(list(self.down))
            self.down[path] = not self.down[path]


def start(folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MONITOR_LOG_FORMAT": "json"}
    log = (folder / "run.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "-c", str(folder / "sites.yaml")],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return orjson.loads(resp.read())


async def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(120):
        if proc.poll() is not None:
            raise AssertionError(f"monitor run exited with {proc.returncode}")
        try:
            await asyncio.to_thread(get, f"http://127.0.0.1:{port}/readyz")
            return
        except OSError:
            await asyncio.sleep(0.25)
    raise AssertionError("monitor run never became ready")


async def test_kill_9_at_random_points_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    """Incidents open, escalate and resolve while the engine is killed -9 five times: afterwards no incident
    opened twice, no chatroom post twice, every notification delivered (duplicates only under one key)."""
    rng = random.Random(int(os.environ.get("HOSTILE_SEED", "20261125")))
    world = World()
    app = web.Application()
    app.router.add_get("/shop", world.site)
    app.router.add_get("/blog", world.site)
    app.router.add_post("/hook", world.hook)
    runner, tport = await start_app(app)
    port = free_port()
    (tmp_path / "sites.yaml").write_text(CONFIG.format(port=port, base=f"http://127.0.0.1:{tport}"))
    weather = asyncio.create_task(world.weather(rng))
    try:
        world.down["/shop"] = True  # something is open from the start
        for _ in range(5):
            proc = start(tmp_path)
            await wait_ready(port, proc)
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            proc.kill()
            await asyncio.to_thread(proc.wait, 30)
        weather.cancel()
        world.down = dict.fromkeys(world.down, False)  # calm: everything recovers and is delivered
        proc = start(tmp_path)
        await wait_ready(port, proc)
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            await asyncio.sleep(0.5)
            open_ = await asyncio.to_thread(get, f"{base}/api/v1/incidents?status=open")
            if not open_["incidents"]:  # type: ignore[index]
                metrics = await asyncio.to_thread(urllib.request.urlopen, f"{base}/metrics", None, 10)
                if b"monitor_notification_queue_depth 0.0" in metrics.read():
                    break
        else:
            pytest.fail("never settled")
        incidents = (await asyncio.to_thread(get, f"{base}/api/v1/incidents?status=all&limit=5000"))["incidents"]  # type: ignore[index]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        weather.cancel()
        await runner.cleanup()

    assert incidents, "the world never broke anything"
    # one incident per (site, condition) at a time: their open intervals never overlap
    spans: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for i in incidents:
        spans.setdefault((i["site"], i["condition"]), []).append((i["opened_at"], i["resolved_at"]))
    for pair, times in spans.items():
        times.sort()
        for (_, closed), (opened, _) in itertools.pairwise(times):
            assert closed is not None and closed <= opened, (pair, times)
    # each incident posted once per status in the chatroom
    chatroom = (tmp_path / "chatroom.md").read_text()
    posts = Counter(re.findall(r"\[TASK_ID\]: (\S+)[\s\S]*?\*\*Status\*\*: (\w+)", chatroom))
    assert posts, chatroom[:500]
    assert max(posts.values()) == 1, [p for p, n in posts.items() if n > 1]
    # nothing lost: every incident's opening reached its first responder; resolutions were sent
    opened = {e["incident"]["id"] for e in world.events if e["event"] == "opened"}  # type: ignore[index]
    assert {i["id"] for i in incidents} <= opened
    resolved = {e["incident"]["id"] for e in world.events if e["event"] == "resolved"}  # type: ignore[index]
    assert {i["id"] for i in incidents} <= resolved
    # a repeat after a crash mid-delivery is possible (at-least-once) but always under the same key
    keys_of: dict[tuple[str, str, str], set[str]] = {}
    for event, key in zip(world.events, world.order, strict=True):
        if event["event"] in ("opened", "resolved"):
            triple = (str(event["event"]), str(event["incident"]["id"]), str(event["recipient"]))  # type: ignore[index]
            keys_of.setdefault(triple, set()).add(key)
    assert all(len(keys) == 1 for keys in keys_of.values()), keys_of


async def test_sigterm_drains_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM: the engine stops probing, flushes, and exits 0 within 20 s."""
    port = free_port()
    (tmp_path / "sites.yaml").write_text(
        CONFIG.format(port=port, base=f"http://127.0.0.1:{free_port()}")  # everything down: work in flight
    )
    proc = start(tmp_path)
    await wait_ready(port, proc)
    await asyncio.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0
    assert time.monotonic() - started < 20


def run_once(folder: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "run", "-c", str(folder / "sites.yaml")],
        cwd=folder, env={**os.environ, "MONITOR_LOG_FORMAT": "json"},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_corrupt_sqlite_file_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    """A store file that is not SQLite: a message naming the store, exit 2, no hang."""
    (tmp_path / "sites.yaml").write_text(CONFIG.format(port=free_port(), base="http://127.0.0.1:9"))
    (tmp_path / "monitor.db").write_bytes(b"this is not a database\x00" * 512)
    done = run_once(tmp_path)
    assert done.returncode != 0
    assert "sqlite store" in done.stderr
    assert "monitor.db" in done.stderr
    assert "Traceback" not in done.stderr


def test_locked_sqlite_file_fails_with_a_clear_error(tmp_path: Path) -> None:
    """Another process holds an exclusive transaction: `monitor run` says the store is locked and exits."""
    (tmp_path / "sites.yaml").write_text(CONFIG.format(port=free_port(), base="http://127.0.0.1:9"))
    holder = sqlite3.connect(tmp_path / "monitor.db", isolation_level=None)
    holder.execute("CREATE TABLE squatter (x)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO squatter VALUES (1)")
    try:
        done = run_once(tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode != 0
    assert "locked" in done.stderr
    assert "Traceback" not in done.stderr
