"""Replicas on one PostgreSQL: spread by rendezvous hashing, one leader, failover, region quorum."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pgserver import create_database

from monitor.cluster import Cluster, Member, owners, rendezvous
from monitor.config import Config, load_config
from monitor.engine import Engine
from monitor.incidents.model import Status
from monitor.results import FailureKind, ProbeResult, Problem
from monitor.store.postgres import PostgresStore

HEARTBEAT, TTL = 0.25, 1.0


class Targets:
    """Real HTTP targets on 127.0.0.1: /cN answers `status[N]` and counts hits."""

    def __init__(self) -> None:
        self.status: dict[str, int] = collections.defaultdict(lambda: 200)
        self.hits: collections.Counter[str] = collections.Counter()
        self.base = ""
        self.pages: list[tuple[str, str]] = []  # (event, incident id) of each webhook delivery

    async def handle(self, request: web.Request) -> web.Response:
        name = request.path.strip("/")
        self.hits[name] += 1
        if request.method == "POST":
            doc = await request.json()
            self.pages.append((doc["event"], doc["incident"]["id"]))
        return web.Response(status=self.status[name], text="Add to cart")


@pytest.fixture
async def targets() -> AsyncIterator[Targets]:
    t = Targets()
    app = web.Application()
    app.router.add_route("*", "/{name}", t.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    t.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield t
    await runner.cleanup()


def write_config(tmp_path: Path, url: str, checks: str, hook: str = "http://127.0.0.1:9/hook") -> Config:
    path = tmp_path / "sites.yaml"
    path.write_text(
        f"""
version: 1
monitor: {{store: "{url}", workspace: ws}}
defaults: {{interval: 500ms, timeout: 400ms, failure_threshold: 2, success_threshold: 1}}
channels:
  hook: {{type: webhook, url: "{hook}"}}
people:
  owen: {{name: Owen, notify: [hook]}}
conditions:
  production_down: {{first_responders: [owen]}}
sites:
  - name: shop
    checks:
{checks}
"""
    )
    return load_config(path, {})


Replica = tuple[Engine, Cluster]
StartReplica = Callable[..., Awaitable[Replica]]


@pytest.fixture
async def replicas(postgres_server: str, tmp_path: Path) -> AsyncIterator[tuple[str, StartReplica]]:
    """(database URL, start(config, id, region, schedule)) -> a running engine with its cluster membership."""
    url = await create_database(postgres_server)
    running: list[Replica] = []

    async def start(config: Config, replica_id: str, region: str = "default", schedule: bool = True) -> Replica:
        engine = Engine(config, PostgresStore(url))
        cluster = Cluster(engine, region=region, replica_id=replica_id, heartbeat=HEARTBEAT, ttl=TTL, poll=0.05)
        cluster.attach()
        await engine.start(schedule=schedule)
        await cluster.start()
        running.append((engine, cluster))
        return engine, cluster

    yield url, start
    for engine, cluster in running:
        for step in (cluster.stop, engine.stop, cluster.close):
            with contextlib.suppress(Exception):  # a crashed replica's store is already gone
                await step()
        if engine.session is not None and not engine.session.closed:
            await engine.session.close()


async def crash(engine: Engine, cluster: Cluster) -> None:
    """As close to kill -9 as one process allows: loops stop, connections drop, nothing says goodbye."""
    for task in [*cluster._tasks, *engine.background, *(engine._scheduler.tasks if engine._scheduler else [])]:
        task.cancel()
    if cluster._lock_conn is not None:
        cluster._lock_conn.terminate()
    cluster.leader = False
    pool = engine.store._pool  # type: ignore[attr-defined]
    if pool is not None:
        pool.terminate()
    engine.store._pool = None  # type: ignore[attr-defined]


async def eventually(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Wait until predicate() (sync or async) is true; returns the seconds it took."""
    started = time.monotonic()
    while True:
        got = predicate()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def test_rendezvous_moves_only_the_leavers_checks() -> None:
    """Removing a replica moves only the checks it owned; adding one takes ~1/N from the others."""
    keys = [f"site/check-{i}" for i in range(300)]
    three = ["r1", "r2", "r3"]
    before = {k: rendezvous(k, three) for k in keys}
    after = {k: rendezvous(k, ["r1", "r2"]) for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != "r3")
    counts = collections.Counter(before.values())
    assert min(counts.values()) > 60
    four = {k: rendezvous(k, [*three, "r4"]) for k in keys}
    moved = [k for k in keys if four[k] != before[k]]
    assert all(four[k] == "r4" for k in moved)


async def test_three_replicas_spread_fail_over_and_open_one_incident(
    replicas: tuple[str, StartReplica], targets: Targets, tmp_path: Path
) -> None:
    """Three replicas probe each check once between them; one leader opens one incident; a dead
    replica's checks and the leadership move to the survivors within seconds."""
    url, start = replicas
    checks = "\n".join(f"      - {{type: http, name: c{i}, url: '{targets.base}/c{i}'}}" for i in range(9))
    config = write_config(tmp_path, url, checks, hook=f"{targets.base}/hook")
    started = [await start(config, rid) for rid in ("r1", "r2", "r3")]
    await eventually(lambda: all(len(c.members) == 3 for _, c in started), 5, "all three see each other")
    await eventually(lambda: sum(c.leader for _, c in started) == 1, 5, "one leader")

    # every check has exactly one owner, and everyone owns some
    for check in config.checks:
        assert sum(c.owns(check) for _, c in started) == 1
    assert all(any(c.owns(ch) for ch in config.checks) for _, c in started)

    # each check is probed about once per interval, not three times
    targets.hits.clear()
    await asyncio.sleep(2.0)
    for i in range(9):
        assert 2 <= targets.hits[f"c{i}"] <= 6, targets.hits

    # a failing site opens exactly one incident, by the leader, with its pages queued
    targets.status["c0"] = 503
    store = started[0][0].store
    await eventually(lambda: store.find_open_incident("shop", "production_down"), 10, "an incident opens")
    await asyncio.sleep(1.5)
    opened = await store.list_incidents("all")
    assert len(opened) == 1
    assert await store.list_outbox(opened[0].id)
    await eventually(lambda: targets.pages, 5, "the page is delivered")
    # every replica's API view shows it (followers reload from the store each tick)
    await eventually(lambda: all(opened[0].id in e.open for e, _ in started), 5, "all replicas show it")

    # kill the leader: the others elect a new one and take its checks
    leader = next(r for r in started if r[1].leader)
    orphan = [ch for ch in config.checks if leader[1].owns(ch)]
    await crash(*leader)
    survivors = [r for r in started if r is not leader]
    took = await eventually(lambda: sum(c.leader for _, c in survivors) == 1, 10, "a new leader")
    assert took < 5
    await eventually(lambda: all(len(c.members) == 2 for _, c in survivors), 5, "the dead one is dropped")
    for check in orphan:
        assert sum(c.owns(check) for _, c in survivors) == 1
    before = {ch.name: targets.hits[ch.name] for ch in orphan}
    await asyncio.sleep(2 * 0.5 + 0.5)
    assert all(targets.hits[ch.name] > before[ch.name] for ch in orphan), (before, targets.hits)

    # recovery under the new leader resolves the same incident; still only one ever opened
    targets.status["c0"] = 200
    await eventually(lambda: store_status(survivors[0][0], opened[0].id, Status.RESOLVED), 10, "the incident resolves")
    assert len(await survivors[0][0].store.list_incidents("all")) == 1
    await eventually(lambda: ("resolved", opened[0].id) in targets.pages, 5, "the resolution is delivered")
    assert targets.pages == [("opened", opened[0].id), ("resolved", opened[0].id)]


async def store_status(engine: Engine, incident_id: str, status: Status) -> bool:
    got = await engine.store.get_incident(incident_id)
    return got is not None and got.status is status


DOWN = ProbeResult(
    duration=0.01,
    status_code=503,
    problems=(Problem(condition="production_down", kind=FailureKind.BAD_STATUS, summary="answered 503"),),
)
UP = ProbeResult(duration=0.01, status_code=200)


async def test_quorum_of_regions_must_agree(replicas: tuple[str, StartReplica], tmp_path: Path) -> None:
    """A check confirmed from eu and us with quorum 2 trips only when both regions see it fail."""
    url, start = replicas
    checks = "      - {type: http, url: 'http://127.0.0.1:9/', confirm: {regions: [eu, us], quorum: 2}}"
    config = write_config(tmp_path, url, checks)
    (eu, eu_c), (us, us_c) = [
        await start(config, rid, region, schedule=False) for rid, region in (("r-eu", "eu"), ("r-us", "us"))
    ]
    await eventually(lambda: len(eu_c.members) == 2 and len(us_c.members) == 2, 5, "both regions live")
    check = config.checks[0]
    assert owners(check, [Member("r-eu", "eu"), Member("r-us", "us")]) == {"eu": "r-eu", "us": "r-us"}
    assert eu_c.owns(check)
    assert us_c.owns(check)

    async def round_(eu_result: ProbeResult, us_result: ProbeResult) -> None:
        await us_c.submit(check, us_result)
        await eu_c.submit(check, eu_result)
        await asyncio.sleep(0.3)

    for _ in range(4):  # only eu fails: no quorum, no incident
        await round_(DOWN, UP)
    assert await eu.store.list_incidents("all") == []
    for _ in range(3):  # both fail: quorum 2 reached, one incident
        await round_(DOWN, DOWN)
    await eventually(lambda: eu.store.find_open_incident("shop", "production_down"), 5, "quorum trips")
    assert len(await us.store.list_incidents("all")) == 1


async def test_only_the_leader_drains_the_outbox(replicas: tuple[str, StartReplica], tmp_path: Path) -> None:
    """Followers see nothing due in the outbox; the leader sees it once its lead has settled."""
    url, start = replicas
    config = write_config(tmp_path, url, "      - {type: http, url: 'http://127.0.0.1:9/'}")
    a = await start(config, "a", schedule=False)
    b = await start(config, "b", schedule=False)
    from monitor.store import OutboxItem

    await a[0].store.enqueue(
        [
            OutboxItem(
                key="k",
                channel="none",
                recipient="owen",
                event="opened",
                incident_ids=(),
                payload={},
                created_at=0.0,
                next_attempt_at=0.0,
            )
        ]
    )
    leader, follower = (a, b) if a[1].leader else (b, a)
    assert follower[1].leader is False
    assert await follower[0].store.due_outbox(time.time()) == []
    await eventually(leader[1].leader_ready, 3, "the lead settles")
    # the leader's worker may already have tried it; either it is still due or it was attempted
    items = await leader[0].store.list_outbox()
    assert len(items) == 1


async def test_ack_on_a_follower_racing_an_escalation_on_the_leader_is_kept(
    replicas: tuple[str, StartReplica], tmp_path: Path
) -> None:
    """The leader escalates from a view read before a follower's ack: its write conflicts (row
    version), it re-reads, sees the ack and pages no one; the ack is not overwritten."""
    url, start = replicas
    path = tmp_path / "sites.yaml"
    path.write_text(
        f"""
version: 1
monitor: {{store: "{url}", workspace: ws}}
defaults: {{interval: 500ms, timeout: 400ms, failure_threshold: 1, success_threshold: 1}}
channels:
  hook: {{type: webhook, url: "http://127.0.0.1:9/hook"}}
people:
  owen: {{name: Owen, notify: [hook]}}
  marcus: {{name: Marcus, notify: [hook]}}
conditions:
  production_down: {{first_responders: [owen], escalation: [marcus], escalate_after: 1s}}
sites:
  - name: shop
    checks:
      - {{type: http, url: 'http://127.0.0.1:9/'}}
"""
    )
    config = load_config(path, {})
    a, b = await start(config, "a", schedule=False), await start(config, "b", schedule=False)
    await eventually(lambda: a[1].leader or b[1].leader, 5, "a leader")
    (leader, _), (follower, _) = (a, b) if a[1].leader else (b, a)
    ticker = next(t for t in leader.background if t.get_name() == "ticker")
    ticker.cancel()  # the leader's view stays as it is now: before the ack
    leader.before_tick = None
    await leader.handle_result(config.checks[0], DOWN)
    (stale,) = leader.open.values()
    assert stale.status is Status.INVESTIGATING

    await follower.acknowledge(stale.id, "owen")
    assert leader.open[stale.id].status is Status.INVESTIGATING  # stale
    await asyncio.sleep(1.1)  # past escalate_after
    await leader.tick()

    got = await leader.store.get_incident(stale.id)
    assert got is not None
    assert got.status is Status.MITIGATING
    assert got.acknowledged_by == "owen"
    assert got.paged == ("owen",)
    assert not [i for i in await leader.store.list_outbox(stale.id) if i.event == "escalated"]
    assert leader.open[stale.id].status is Status.MITIGATING
