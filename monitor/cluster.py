"""Replicas on one PostgreSQL store: heartbeats, check ownership, one leader, regions.

    replica ──heartbeat──▶ replicas(id, region, seen_at)          every `heartbeat` s
    replica ──owns(check)?──probe──▶ probe_results, latest_results  (rendezvous hashing)
    leader  ◀──FOR UPDATE SKIP LOCKED── probe_results ──▶ rules ──▶ incidents, outbox
    leader  = whoever holds pg_advisory_lock(LEADER_LOCK) on its own connection

- Membership: a replica is live while its row was refreshed within `ttl` seconds
  of the database's clock (one clock for all replicas, so no skew).
- Ownership: a check without `confirm` is probed by one live replica, chosen by
  rendezvous (highest-random-weight) hashing of the check key over all live
  replicas; with `confirm: {regions: [...]}` it is probed once per listed region
  by one replica of that region. Only ~1/N of the checks move when one joins or
  leaves; a dead replica's checks move after `ttl` plus at most one interval.
- Leadership: the session-level advisory lock is released by PostgreSQL as soon
  as the leader's connection dies, so another replica takes over at its next
  heartbeat. Only the leader turns results into incidents, runs escalation
  timers (engine.tick) and drains the outbox (PostgresStore.outbox_gate).
- Fencing: a new leader bumps `leader_lease.epoch` when it takes the lock, and the
  outbox worker asks `fence()` before every delivery: a deposed leader whose epoch
  is no longer current sends nothing more, even if it has not yet noticed that it
  lost the lock; the new leader also waits one heartbeat before delivering.
- Metrics: only the leader exports incident, halt and notification families
  (engine.leading), so sums over replicas do not count an incident three times;
  probe gauges come from the replica that probes the check.
- Quorum: results of a confirm-check drive the rules only when they arrive from
  the first listed region that has a live replica; they count as failing only
  when `quorum` regions' latest fresh results fail.
- Followers keep their API view current by reloading open incidents, rule
  state, overrides and the latest results from the store every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]

from monitor.config import Check
from monitor.errors import MonitorError, StoreError
from monitor.results import ProbeResult
from monitor.rules import Track
from monitor.store.codec import dumps, loads
from monitor.store.postgres import PostgresStore

if TYPE_CHECKING:
    from monitor.engine import Engine

log = logging.getLogger(__name__)

LEADER_LOCK = 0x6D6F6E69746F72_02  # pg_advisory_lock key of the leader ("monitor" + 2)
ANY_REGION = "*"


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    region: str


def _weight(replica: str, key: str) -> bytes:
    return hashlib.blake2b(f"{replica}\0{key}".encode(), digest_size=8).digest()


def rendezvous(key: str, replicas: Iterable[str]) -> str | None:
    """The replica with the highest hash weight for `key` (None when there is none)."""
    return max(replicas, key=lambda r: (_weight(r, key), r), default=None)


def owners(check: Check, members: Sequence[Member]) -> dict[str, str]:
    """region -> the replica that probes `check` for it (ANY_REGION for a check without `confirm`)."""
    if check.confirm is None:
        owner = rendezvous(check.key, (m.id for m in members))
        return {} if owner is None else {ANY_REGION: owner}
    out: dict[str, str] = {}
    for region in check.confirm.regions:
        owner = rendezvous(check.key, (m.id for m in members if m.region == region))
        if owner is not None:
            out[region] = owner
    return out


def combine(
    check: Check, latest: dict[str, tuple[float, ProbeResult]], result: ProbeResult, now: float, freshness: float
) -> ProbeResult:
    """The verdict of a confirm-check: failing only when `quorum` regions' fresh latest results fail."""
    assert check.confirm is not None
    needed = check.confirm.needed
    fresh = [res for region, (at, res) in latest.items() if region in check.confirm.regions and now - at <= freshness]
    failing = [res for res in fresh if not res.ok]
    if len(failing) >= needed:
        return result if not result.ok else failing[0]
    if result.ok:
        return result
    return ProbeResult(
        duration=result.duration,
        status_code=result.status_code,
        phases=result.phases,
        cert_expires_at=result.cert_expires_at,
        detail=f"failing in {len(failing)} of {len(check.confirm.regions)} regions; quorum is {needed}",
    )


# -- result codec ---------------------------------------------------------------------------


def result_to_json(r: ProbeResult) -> dict[str, Any]:
    return r.to_json()


def result_from_json(doc: dict[str, Any]) -> ProbeResult:
    return ProbeResult.from_json(doc)


# -- the cluster ----------------------------------------------------------------------------


class Cluster:
    def __init__(
        self,
        engine: Engine,
        *,
        region: str = "default",
        replica_id: str | None = None,
        heartbeat: float = 2.0,
        ttl: float | None = None,
        poll: float = 0.25,
    ) -> None:
        if not isinstance(engine.store, PostgresStore):
            raise MonitorError("replicas need a shared postgresql:// store (monitor.store)")
        self.engine = engine
        self.store: PostgresStore = engine.store
        self.region = region
        self.id = replica_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.heartbeat = heartbeat
        self.ttl = ttl if ttl is not None else 3 * heartbeat
        self.poll = poll
        self.members: tuple[Member, ...] = ()
        self.leader = False
        self._leader_since = 0.0
        self._lock_conn: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self.epoch = 0  # our leader_lease epoch while we lead
        self._owned: frozenset[str] = frozenset()  # keys of the checks this replica probes
        self._configured = frozenset(c.key for c in engine.config.checks)
        self._latest: dict[str, dict[str, tuple[float, ProbeResult]]] = {}  # the leader's quorum memory
        self._seen: dict[str, float] = {}  # check key -> time of the newest result shown in its view

    @classmethod
    def from_env(cls, engine: Engine, region: str | None = None) -> Cluster:
        """MONITOR_REGION, MONITOR_REPLICA_ID, MONITOR_CLUSTER_HEARTBEAT, MONITOR_CLUSTER_TTL."""
        env = os.environ
        ttl = env.get("MONITOR_CLUSTER_TTL")
        explicit = region or env.get("MONITOR_REGION") or None
        engine.telemetry.region = explicit  # probe metrics carry `region` only when one was given
        return cls(
            engine,
            region=explicit or "default",
            replica_id=env.get("MONITOR_REPLICA_ID") or None,
            heartbeat=float(env.get("MONITOR_CLUSTER_HEARTBEAT", "2")),
            ttl=float(ttl) if ttl else None,
        )

    # -- life cycle ------------------------------------------------------------------------

    def attach(self) -> None:
        """Hook into the engine; call before engine.start()."""
        self.engine.should_probe = self.owns
        self.engine.result_sink = self.submit
        self.engine.before_tick = self.before_tick
        self.engine.leading = lambda: self.leader
        self.store.outbox_gate = self.leader_ready

    async def start(self) -> None:
        """After engine.start(): first heartbeat (so ownership is known), then the loops."""
        await self.beat()
        if self.engine.outbox is not None:
            self.engine.outbox.fence = self.fence
        self._tasks.append(asyncio.create_task(self._every(self.heartbeat, self.beat), name="cluster heartbeat"))
        self._tasks.append(asyncio.create_task(self._every(self.poll, self.consume), name="cluster results"))
        log.info(
            "replica %s joined in region %s (%d live)",
            self.id,
            self.region,
            len(self.members),
            extra={"event_id": "joined"},
        )

    async def stop(self) -> None:
        """Leave: others rebalance our checks at their next heartbeat. A leader keeps the lead
        (and so the outbox) until close(), so engine.stop() can still flush the outbox."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(StoreError):
            await self.store._run(lambda c: c.execute("DELETE FROM replicas WHERE id = $1", self.id))

    async def close(self) -> None:
        """Give up the lead (after engine.stop()): another replica takes it at its next heartbeat."""
        await self._step_down()

    async def _every(self, seconds: float, fn: Any) -> None:
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster: %s failed: %s", fn.__name__, exc, extra={"event_id": "cluster_error"})
            await asyncio.sleep(seconds)

    # -- membership and leadership ---------------------------------------------------------

    async def beat(self) -> None:
        async def beat(conn: Any) -> list[Any]:
            await conn.execute(
                "INSERT INTO replicas(id, region, started_at, seen_at) "
                "VALUES ($1, $2, extract(epoch from now()), extract(epoch from now())) "
                "ON CONFLICT (id) DO UPDATE SET region = excluded.region, seen_at = excluded.seen_at",
                self.id,
                self.region,
            )
            return list(
                await conn.fetch(
                    "SELECT id, region FROM replicas WHERE seen_at > extract(epoch from now()) - $1 ORDER BY id",
                    self.ttl,
                )
            )

        rows = await self.store._run(beat, "heartbeat")
        members = tuple(Member(r["id"], r["region"]) for r in rows)
        if {m.id for m in members} != {m.id for m in self.members}:
            log.info("cluster members: %s", ", ".join(f"{m.id}@{m.region}" for m in members))
        if members != self.members:
            self._owned = frozenset(c.key for c in self.engine.config.checks if self.id in owners(c, members).values())
        self.members = members
        await self._elect()

    async def _elect(self) -> None:
        try:
            if self._lock_conn is None or self._lock_conn.is_closed():
                self._lock_conn = await self.store.connect()
            if self.leader:
                await self._lock_conn.fetchval("SELECT 1", timeout=self.ttl)
            elif await self._lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK, timeout=self.ttl):
                self.epoch = int(
                    await self._lock_conn.fetchval(
                        "INSERT INTO leader_lease(epoch, holder, since) VALUES (1, $1, extract(epoch from now())) "
                        "ON CONFLICT (singleton) DO UPDATE SET epoch = leader_lease.epoch + 1, "
                        "holder = excluded.holder, since = excluded.since RETURNING epoch",
                        self.id,
                        timeout=self.ttl,
                    )
                )
                self.leader = True
                self._leader_since = asyncio.get_running_loop().time()
                log.warning("replica %s is the leader (epoch %d)", self.id, self.epoch, extra={"event_id": "leader"})
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, StoreError) as exc:
            if self.leader:
                log.error("replica %s lost the leadership: %s", self.id, exc, extra={"event_id": "leader_lost"})
            await self._step_down()

    async def _step_down(self) -> None:
        self.leader = False
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
            if not conn.is_closed():
                conn.terminate()

    def leader_ready(self) -> bool:
        """Leader for long enough that a predecessor which lost the lock has seen it (outbox, escalation)."""
        return self.leader and asyncio.get_running_loop().time() - self._leader_since >= self.heartbeat

    async def fence(self) -> bool:
        """Before each delivery: still the settled leader, and no one took a newer lease."""
        if not self.leader_ready():
            return False
        try:
            current = await self.store._run(lambda c: c.fetchval("SELECT epoch FROM leader_lease"), "fence")
        except StoreError as exc:
            log.warning("cluster: cannot confirm the lease, not delivering: %s", exc, extra={"event_id": "fenced"})
            return False
        if current != self.epoch:
            log.error(
                "replica %s was deposed (epoch %s > %d); stepping down",
                self.id,
                current,
                self.epoch,
                extra={"event_id": "fenced"},
            )
            await self._step_down()
            return False
        return True

    def owns(self, check: Check) -> bool:
        if check.key in self._configured:
            return check.key in self._owned
        return self.id in owners(check, self.members).values()  # not in the config (a synthetic check)

    # -- results ---------------------------------------------------------------------------

    async def submit(self, check: Check, result: ProbeResult) -> None:
        """A probe this replica ran: show it here, queue it for the leader, publish it to the others."""
        now = self.engine.clock.now()
        self.engine.observe(check, result, now)
        self._seen[check.key] = now
        body = dumps(result_to_json(result))

        async def write(conn: Any) -> None:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO probe_results(check_key, region, replica, at, body) VALUES ($1, $2, $3, $4, $5)",
                    check.key,
                    self.region,
                    self.id,
                    now,
                    body,
                )
                await conn.execute(
                    "INSERT INTO latest_results(check_key, region, replica, at, body) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (check_key, region) DO UPDATE SET replica = excluded.replica, at = excluded.at, "
                    "body = excluded.body",
                    check.key,
                    self.region,
                    self.id,
                    now,
                    body,
                )

        await self.store._run(write, "submit result")

    async def consume(self) -> None:
        """The leader: feed queued results through the rules, oldest first, then drop them."""
        if not self.leader:
            return

        async def batch(conn: Any) -> None:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT seq, check_key, region, at, body FROM probe_results "
                    "ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED"
                )
                for row in rows:
                    if not self.leader:
                        raise StoreError("lost the leadership while handling results")
                    await self._handle(row["check_key"], row["region"], row["at"], result_from_json(loads(row["body"])))
                if rows:
                    await conn.execute(
                        "DELETE FROM probe_results WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows]
                    )

        await self.store._run(batch, "consume results")

    async def _handle(self, key: str, region: str, at: float, result: ProbeResult) -> None:
        check = self.engine.config.check_by_key(key)
        if check is None:
            return
        try:
            if check.confirm is not None:
                latest = self._latest.setdefault(key, {})
                latest[region] = (at, result)
                live = {m.region for m in self.members}
                driver = next((r for r in check.confirm.regions if r in live), region)
                if region != driver:
                    return
                freshness = 2 * check.interval + self.ttl
                result = combine(check, latest, result, at, freshness)
            await self.engine.handle_result(check, result, observe=False)
        except Exception:
            log.exception("leader: cannot handle a result", extra={"site": check.site, "check": check.name})

    # -- every tick: the shared view -------------------------------------------------------

    async def before_tick(self) -> bool:
        """Reload what other replicas changed; True when this replica should run escalations."""
        engine = self.engine
        async with engine.lock:
            engine.open = {i.id: i for i in await engine.store.list_incidents("open", limit=100_000)}
            engine.overrides = await engine.store.list_overrides()
            if not self.leader:
                states = await engine.store.load_check_states()
                engine.tracks = {
                    key: {c: Track.from_json(t) for c, t in doc.items()}
                    for key, doc in states.items()
                    if key in engine.views
                }
        await self._refresh_views()
        if not self.leader_ready():
            await engine._refresh_halt()
            return False
        return True

    async def _refresh_views(self) -> None:
        rows = await self.store._run(lambda c: c.fetch("SELECT check_key, at, body FROM latest_results"))
        for row in sorted(rows, key=lambda r: r["at"]):
            key, at = row["check_key"], row["at"]
            view = self.engine.views.get(key)
            if view is None or at <= self._seen.get(key, 0.0):
                continue
            result = result_from_json(loads(row["body"]))
            view.last, view.last_at = result, at
            view.history.append((at, result.ok))
            self._seen[key] = at
