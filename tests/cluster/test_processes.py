"""Three `monitor run` processes on one config and one real PostgreSQL, real targets and a real
webhook receiver on 127.0.0.1: one prober per check (per region for a confirm-check), the region
quorum, kill -9 of the leader while an incident escalates, kill -9 of a prober, the same API answer
from every replica, and every page delivered exactly once.

Timeouts are generous (a loaded CI box must not fail this); nothing here asserts speed except the
issue's own bounds: a new leader "within seconds" (10 s) and orphaned checks probed again "within two
intervals".
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from pgserver import create_database, free_port

from monitor.cluster import ANY_REGION, Member, owners
from monitor.config import Config, load_config

pytestmark = pytest.mark.slow

INTERVAL = 3.0  # seconds between probes of a check
HEARTBEAT = 0.5  # MONITOR_CLUSTER_HEARTBEAT; the TTL is 3 x this
REGIONS = {"r1": "eu", "r2": "eu", "r3": "us"}

CONFIG = """
version: 1
monitor:
  store: "${MONITOR_STORE}"
  workspace: ws
  tokens: {responder: "${MONITOR_RESPONDER_TOKEN}"}
defaults: {interval: 3s, timeout: 1s, failure_threshold: 2, success_threshold: 1}
notifications: {group_threshold: 0, retry_initial: 250ms, retry_max: 2s}
channels:
  hook: {type: webhook, url: "${TARGETS}/hook"}
people:
  owen: {name: Owen, notify: [hook]}
  marcus: {name: Marcus, notify: [hook]}
  jonny: {name: Jonny, notify: [hook]}
conditions:
  production_down: {first_responders: [owen], escalation: [marcus, jonny], escalate_after: 2s}
sites:
  - name: shop
    checks:
%(shop)s
  - name: quorum
    checks:
      - type: http
        name: q
        url: "${TARGETS}/t/q"
        headers: {X-Region: "${MONITOR_REGION}"}
        confirm: {regions: [eu, us], quorum: 2}
"""
SHOP = "\n".join(
    f'      - {{type: http, name: c{i}, url: "${{TARGETS}}/t/c{i}", headers: {{X-Region: "${{MONITOR_REGION}}"}}}}'
    for i in range(6)
)


@dataclass
class World:
    """The targets and the webhook receiver, on one aiohttp server in the test's loop."""

    base: str = ""
    failing: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))  # target -> regions
    hits: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, target, region)
    pages: list[tuple[str, str, str, str]] = field(default_factory=list)  # (key, event, recipient, incident)

    async def target(self, request: web.Request) -> web.Response:
        name, region = request.match_info["name"], request.headers.get("X-Region", "?")
        self.hits.append((time.monotonic(), name, region))
        status = 503 if region in self.failing[name] or "*" in self.failing[name] else 200
        return web.Response(status=status, text="Add to cart")

    async def hook(self, request: web.Request) -> web.Response:
        doc = await request.json()
        self.pages.append(
            (request.headers["Idempotency-Key"], doc["event"], doc["recipient"], doc.get("incident", {}).get("id", ""))
        )
        return web.json_response({"ok": True})

    def hits_since(self, since: float, name: str, region: str | None = None) -> list[float]:
        return [t for t, n, r in self.hits if t >= since and n == name and (region is None or r == region)]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    app = web.Application()
    app.router.add_get("/t/{name}", w.target)
    app.router.add_post("/hook", w.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    w.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield w
    await runner.cleanup()


@dataclass
class Replica:
    id: str
    region: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    db: str
    config: Config
    replicas: dict[str, Replica]
    http: aiohttp.ClientSession

    def live(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.alive]

    async def sql(self, query: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.db)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def lease(self) -> tuple[str, int] | None:
        rows = await self.sql("SELECT holder, epoch FROM leader_lease")
        return (rows[0]["holder"], rows[0]["epoch"]) if rows else None

    async def members(self) -> list[Member]:
        rows = await self.sql(
            "SELECT id, region FROM replicas WHERE seen_at > extract(epoch from now()) - $1 ORDER BY id", 3 * HEARTBEAT
        )
        return [Member(r["id"], r["region"]) for r in rows]

    async def get(self, replica: Replica, path: str) -> Any:
        async with self.http.get(replica.url + path) as resp:
            assert resp.status == 200, (replica.id, path, resp.status)
            return await resp.json()

    async def incidents(self, site: str | None = None) -> list[dict[str, Any]]:
        doc = await self.get(self.live()[0], "/api/v1/incidents?status=all")
        return [i for i in doc["incidents"] if site is None or i["site"] == site]


async def eventually(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    started = time.monotonic()
    while True:
        got = predicate()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def cluster(postgres_server: str, world: World, tmp_path: Path) -> AsyncIterator[Cluster]:
    db = await create_database(postgres_server)
    path = tmp_path / "sites.yaml"
    path.write_text(CONFIG % {"shop": SHOP})
    env = {
        **os.environ,
        "MONITOR_STORE": db,
        "TARGETS": world.base,
        "MONITOR_RESPONDER_TOKEN": "test-responder-token",
        "MONITOR_CLUSTER_HEARTBEAT": str(HEARTBEAT),
        "MONITOR_LOG_FORMAT": "json",
    }
    env.pop("MONITOR_CONFIG", None)
    env.pop("MONITOR_LISTEN", None)
    config = load_config(path, {**env, "MONITOR_REGION": "eu"})
    replicas: dict[str, Replica] = {}
    for rid, region in REGIONS.items():
        port = free_port()
        log = tmp_path / f"{rid}.log"
        proc = subprocess.Popen(  # noqa: ASYNC220 - our own CLI, started once
            [
                sys.executable,
                "-m",
                "monitor",
                "run",
                "-c",
                str(path),
                "--region",
                region,
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env={**env, "MONITOR_REPLICA_ID": rid, "MONITOR_REGION": region},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        replicas[rid] = Replica(rid, region, port, log, proc)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        c = Cluster(db, config, replicas, http)
        try:
            yield c
        finally:
            for r in c.live():
                r.proc.send_signal(signal.SIGTERM)
            for r in replicas.values():
                try:
                    r.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
                    r.proc.wait()
            for r in replicas.values():  # shown by pytest when the test failed
                print(f"--- {r.id} ({r.region}) exit {r.proc.returncode} ---")
                print("\n".join(r.log.read_text(errors="replace").splitlines()[-40:]))


async def ready(c: Cluster, r: Replica) -> bool:
    with contextlib.suppress(aiohttp.ClientError, OSError):
        async with c.http.get(r.url + "/readyz") as resp:
            return resp.status == 200
    return False


async def same_api_everywhere(c: Cluster, what: str) -> None:
    """Every live replica answers /api/v1/incidents (open and all) and /api/v1/halt alike."""

    async def answers() -> bool:
        docs = []
        for r in c.live():
            docs.append(
                (
                    await c.get(r, "/api/v1/incidents?status=all"),
                    await c.get(r, "/api/v1/incidents?status=open"),
                    await c.get(r, "/api/v1/halt"),
                )
            )
        return all(d == docs[0] for d in docs)

    await eventually(answers, 15, f"the same API answer from every replica ({what})")


def owned_by(c: Cluster, members: list[Member], replica: str) -> list[tuple[str, str]]:
    """(check name, region or ANY_REGION) that `replica` probes among `members`."""
    return [
        (check.name, region)
        for check in c.config.checks
        for region, rid in owners(check, members).items()
        if rid == replica
    ]


async def test_three_processes_one_prober_quorum_failover_and_pages_once(cluster: Cluster, world: World) -> None:
    """The issue's "done when", on real processes, PostgreSQL and HTTP."""
    c = cluster
    for r in c.replicas.values():
        await eventually(lambda r=r: ready(c, r), 60, f"{r.id} ready")
    await eventually(lambda: _count(c.members(), 3), 30, "three live members")
    await eventually(c.lease, 30, "a leader")

    # -- every check is probed by exactly one replica (per region for the confirm-check) --------
    await asyncio.sleep(INTERVAL)  # let ownership settle after the joins
    since = time.monotonic()
    await asyncio.sleep(4 * INTERVAL)
    for i in range(6):
        got = len(world.hits_since(since, f"c{i}"))
        assert 3 <= got <= 5, (f"c{i}", got, "probes in 4 intervals; two probers would give ~8")
    for region in ("eu", "us"):
        got = len(world.hits_since(since, "q", region))
        assert 3 <= got <= 5, ("q", region, got)

    # -- quorum: only eu sees 503 -> nothing; both see it -> SEV-1 ------------------------------
    world.failing["q"] = {"eu"}
    await asyncio.sleep(5 * INTERVAL)
    assert await c.incidents("quorum") == [], "one failing region of two opened an incident"
    world.failing["q"] = {"eu", "us"}
    await eventually(lambda: _count(c.incidents("quorum"), 1), 10 * INTERVAL, "both regions failing open SEV-1")
    (quorum,) = await c.incidents("quorum")
    assert quorum["severity"] == "SEV-1"
    assert quorum["condition"] == "production_down"
    world.failing["q"] = set()
    await eventually(lambda: _resolved(c, quorum["id"]), 10 * INTERVAL, "the quorum incident resolves")

    # -- kill -9 the leader while an incident escalates -----------------------------------------
    world.failing["c0"] = {"*"}
    await eventually(lambda: _count(c.incidents("shop"), 1), 10 * INTERVAL, "c0 opens an incident")
    (shop,) = await c.incidents("shop")
    await eventually(lambda: _paged(world, shop["id"], "opened", "owen"), 20, "the opened page")
    await same_api_everywhere(c, "incident open, three replicas")
    lease = await c.lease()
    assert lease is not None
    leader, epoch = c.replicas[lease[0]], lease[1]
    await asyncio.sleep(0.3)  # the opened page is marked delivered before the crash
    killed_at = time.monotonic()
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait()

    async def new_leader() -> bool:
        got = await c.lease()
        return got is not None and got[1] > epoch and got[0] != leader.id

    took = await eventually(new_leader, 10, "another replica leads")
    assert took < 10
    await eventually(lambda: _paged(world, shop["id"], "escalated", "marcus"), 30, "escalation to marcus")
    await eventually(lambda: _paged(world, shop["id"], "escalated", "jonny"), 30, "escalation to jonny")
    assert time.monotonic() - killed_at < 60
    await same_api_everywhere(c, "after the leader's death")

    # -- kill -9 a prober that is not the leader: its checks move within two intervals ----------
    lease = await c.lease()
    assert lease is not None
    await eventually(lambda: _count(c.members(), 2), 30, "the dead leader leaves the membership")
    members = await c.members()
    victim = next(r for r in c.live() if r.id != lease[0])
    survivors = [m for m in members if m.id != victim.id]
    orphans = [
        (name, region)
        for name, region in owned_by(c, members, victim.id)
        if region == ANY_REGION or any(m.region == region for m in survivors)
    ]
    assert orphans, "the victim probes nothing; rendezvous should give it some checks"
    killed_at = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    await asyncio.sleep(2 * INTERVAL)
    for name, region in orphans:
        hits = world.hits_since(killed_at, name, None if region == ANY_REGION else region)
        assert hits, f"{name} ({region}) not probed within two intervals of its prober's death"
        assert hits[0] - killed_at <= 2 * INTERVAL

    # -- recovery under the last replica; every page exactly once -------------------------------
    world.failing["c0"] = set()
    await eventually(lambda: _resolved(c, shop["id"]), 10 * INTERVAL, "the shop incident resolves")
    for who in ("owen", "marcus", "jonny"):
        await eventually(lambda who=who: _paged(world, shop["id"], "resolved", who), 30, f"resolved to {who}")
    await same_api_everywhere(c, "one replica left")
    await asyncio.sleep(2)  # anything sent twice would arrive by now

    keys = collections.Counter(key for key, *_ in world.pages)
    assert [k for k, n in keys.items() if n > 1] == [], "a page arrived twice"
    rows = await c.sql("SELECT key, status FROM outbox")
    assert {r["key"] for r in rows} == set(keys), "a page is missing (or was sent without an outbox row)"
    assert {r["status"] for r in rows} == {"delivered"}
    shop_pages = {(event, who) for _, event, who, iid in world.pages if iid == shop["id"]}
    assert shop_pages == {
        ("opened", "owen"),
        ("escalated", "marcus"),
        ("escalated", "jonny"),
        ("resolved", "owen"),
        ("resolved", "marcus"),
        ("resolved", "jonny"),
    }
    assert {event for _, event, _, iid in world.pages if iid == quorum["id"]} >= {"opened", "resolved"}
    assert len(await c.incidents()) == 2  # no incident opened twice


async def _count(coro: Any, n: int) -> bool:
    return len(await coro) == n


async def _resolved(c: Cluster, incident_id: str) -> bool:
    doc = await c.get(c.live()[0], f"/api/v1/incidents/{incident_id}")
    return bool(doc["status"] == "RESOLVED")


def _paged(world: World, incident_id: str, event: str, who: str) -> bool:
    return any(e == event and r == who and i == incident_id for _, e, r, i in world.pages)
