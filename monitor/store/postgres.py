"""The scale-out store: PostgreSQL through an asyncpg connection pool.

Same contract as sqlite.py (tests/store/ runs one suite over both). What differs:

- Migrations are numbered scripts applied in one transaction under a
  transaction-scoped advisory lock, so replicas starting together never race;
  the applied version lives in `monitor_schema`.
- Bodies are orjson bytes in `bytea` columns (not `jsonb`: jsonb refuses the
  NUL character, and probe evidence is arbitrary text).
- "One open incident per (site, condition)" is the same partial unique index;
  `create_incident` inserts with ON CONFLICT DO NOTHING, so a second replica
  racing to open the same incident gets False and joins the first one.
- Incidents carry a row version: `update_incident` is a compare-and-swap
  (`WHERE version = $expected`), raising StoreConflict when another replica
  changed the row since it was read.
- `due_outbox` is a plain ordered read: exactly one consumer drains the outbox
  (the leader, see cluster.py, which sets `outbox_gate` so followers see nothing
  due), so no row claiming is needed.

Every error is a StoreError naming the store by its URL with the password masked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from monitor.errors import StoreError, StoreLocked
from monitor.incidents.model import Incident
from monitor.store import IncidentFilter, OutboxItem, Override, StoreConflict
from monitor.store.codec import (
    dumps,
    incident_from_row,
    incident_row,
    loads,
    outbox_from_json,
    outbox_to_json,
    override_from_json,
    override_to_json,
)

T = TypeVar("T")

# pg_advisory_xact_lock key serialising migrations across replicas ("monitor" + "mig").
MIGRATION_LOCK = 0x6D6F6E69746F72_01

MIGRATIONS: list[str] = [
    # 1: the first schema (mirrors sqlite.py's)
    """
    CREATE TABLE incidents (
        id text PRIMARY KEY,
        site text NOT NULL,
        condition text NOT NULL,
        status text NOT NULL,
        opened_at double precision NOT NULL,
        body bytea NOT NULL
    );
    CREATE UNIQUE INDEX incidents_one_open ON incidents(site, condition) WHERE status <> 'RESOLVED';
    CREATE INDEX incidents_opened ON incidents(opened_at);
    CREATE TABLE incident_numbers (day text PRIMARY KEY, last integer NOT NULL);
    CREATE TABLE check_states (key text PRIMARY KEY, body bytea NOT NULL);
    CREATE TABLE probe_state (
        scope text NOT NULL, key text NOT NULL, body bytea NOT NULL, PRIMARY KEY (scope, key)
    );
    CREATE TABLE outbox (
        key text PRIMARY KEY,
        status text NOT NULL,
        next_attempt_at double precision NOT NULL,
        created_at double precision NOT NULL,
        incident_ids text[] NOT NULL,
        body bytea NOT NULL
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at, created_at, key) WHERE status = 'pending';
    CREATE INDEX outbox_incidents ON outbox USING gin (incident_ids);
    CREATE TABLE overrides (id text PRIMARY KEY, created_at double precision NOT NULL, body bytea NOT NULL);
    """,
    # 2: replicas (cluster.py): membership, results queued for the leader, the latest result per region
    """
    CREATE TABLE replicas (
        id text PRIMARY KEY,
        region text NOT NULL,
        started_at double precision NOT NULL,
        seen_at double precision NOT NULL
    );
    CREATE TABLE probe_results (
        seq bigserial PRIMARY KEY,
        check_key text NOT NULL,
        region text NOT NULL,
        replica text NOT NULL,
        at double precision NOT NULL,
        body bytea NOT NULL
    );
    CREATE TABLE latest_results (
        check_key text NOT NULL,
        region text NOT NULL,
        replica text NOT NULL,
        at double precision NOT NULL,
        body bytea NOT NULL,
        PRIMARY KEY (check_key, region)
    );
    """,
    # 3: a row version per incident (optimistic concurrency); the leader's lease epoch (fencing)
    """
    ALTER TABLE incidents ADD COLUMN version bigint NOT NULL DEFAULT 1;
    CREATE TABLE leader_lease (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        epoch bigint NOT NULL,
        holder text NOT NULL,
        since double precision NOT NULL
    );
    """,
]

SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS monitor_schema (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version integer NOT NULL
)
"""


def mask_url(url: str) -> str:
    """`url` with any password (in the authority or a `password=` query parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            user, sep, _password = userinfo.partition(":")
            netloc = f"{user}{':***' if sep else ''}@{hostinfo}"
        query = urlencode(
            [
                (k, "***" if k.lower() in ("password", "passfile", "sslpassword") else v)
                for k, v in parse_qsl(parts.query)
            ],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return url.split("://", 1)[0] + "://***"


def _password_of(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v]
        return [p for p in found if p]
    except ValueError:
        return []


class PostgresStore:
    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._secrets = _password_of(url)
        # With replicas only the leader drains the outbox; cluster.py sets this (None: always).
        self.outbox_gate: Callable[[], bool] | None = None

    # -- plumbing --------------------------------------------------------------------------

    def _name(self) -> str:
        return f"postgresql store {mask_url(self.url)}"

    def _error(self, what: str, exc: BaseException) -> StoreError:
        message = f"{self._name()}: {what}{': ' if what else ''}{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        if isinstance(exc, asyncpg.LockNotAvailableError):
            return StoreLocked(message)
        return StoreError(message)

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], what: str = "") -> T:
        if self._pool is None:
            raise StoreError(f"{self._name()}: store is not open")
        try:
            async with self._pool.acquire(timeout=self.connect_timeout) as conn:
                return await fn(conn)
        except StoreError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise self._error(what, exc) from None

    async def connect(self) -> asyncpg.Connection:
        """One connection outside the pool (cluster.py holds the leader lock on one)."""
        try:
            return await asyncpg.connect(self.url, timeout=self.connect_timeout)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, ValueError) as exc:
            raise self._error("cannot connect", exc) from None

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, ValueError) as exc:
            raise self._error("cannot open", exc) from None
        self._pool = pool
        try:
            await self._run(self._migrate, "cannot migrate")
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(SCHEMA_TABLE)
            version = await conn.fetchval("SELECT version FROM monitor_schema") or 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self._name()}: schema version {version} is newer than this monitor ({len(MIGRATIONS)})"
                )
            for script in MIGRATIONS[version:]:
                await conn.execute(script)
            if version < len(MIGRATIONS):
                await conn.execute(
                    "INSERT INTO monitor_schema(version) VALUES ($1) "
                    "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
                    len(MIGRATIONS),
                )

    async def schema_version(self) -> int:
        return int(await self._run(lambda c: c.fetchval("SELECT version FROM monitor_schema")) or 0)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=self.connect_timeout)
            except (TimeoutError, asyncpg.InterfaceError, OSError):
                pool.terminate()

    async def ping(self) -> None:
        await self._run(lambda c: c.fetchval("SELECT 1"), "ping")

    # -- incidents -------------------------------------------------------------------------

    async def reserve_incident_number(self, day: str) -> int:
        value = await self._run(
            lambda c: c.fetchval(
                "INSERT INTO incident_numbers(day, last) VALUES ($1, 1) "
                "ON CONFLICT (day) DO UPDATE SET last = incident_numbers.last + 1 RETURNING last",
                day,
            )
        )
        return int(value)

    async def create_incident(self, incident: Incident, outbox: Sequence[OutboxItem] = ()) -> bool:
        async def create(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                status = await conn.execute(
                    "INSERT INTO incidents(id, site, condition, status, opened_at, body) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    *incident_row(incident),
                )
                if status != "INSERT 0 1":
                    return False
                await _insert_outbox(conn, outbox)
                return True

        return await self._run(create)

    async def update_incident(self, incident: Incident, outbox: Sequence[OutboxItem] = ()) -> Incident:
        async def update(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                version = await conn.fetchval(
                    "UPDATE incidents SET status = $1, body = $2, version = version + 1 "
                    "WHERE id = $3 AND ($4 = 0 OR version = $4) RETURNING version",
                    incident.status.value,
                    dumps(incident.to_record()),
                    incident.id,
                    incident.version,
                )
                if version is None:
                    if await conn.fetchval("SELECT 1 FROM incidents WHERE id = $1", incident.id):
                        raise StoreConflict(f"{self._name()}: incident {incident.id} changed since it was read")
                    raise StoreError(f"{self._name()}: no incident {incident.id} to update")
                await _insert_outbox(conn, outbox)
                return int(version)

        return replace(incident, version=await self._run(update))

    async def get_incident(self, incident_id: str) -> Incident | None:
        row = await self._run(lambda c: c.fetchrow("SELECT body, version FROM incidents WHERE id = $1", incident_id))
        return None if row is None else incident_from_row(row)

    async def find_open_incident(self, site: str, condition: str) -> Incident | None:
        row = await self._run(
            lambda c: c.fetchrow(
                "SELECT body, version FROM incidents WHERE site = $1 AND condition = $2 AND status <> 'RESOLVED'",
                site,
                condition,
            )
        )
        return None if row is None else incident_from_row(row)

    async def list_incidents(self, status: IncidentFilter = "all", limit: int = 200) -> list[Incident]:
        where = {"open": "WHERE status <> 'RESOLVED'", "resolved": "WHERE status = 'RESOLVED'", "all": ""}[status]
        rows = await self._run(
            lambda c: c.fetch(
                f"SELECT body, version FROM incidents {where} ORDER BY opened_at DESC, id DESC LIMIT $1",  # noqa: S608
                limit,
            )
        )
        return [incident_from_row(r) for r in rows]

    # -- rule and probe state --------------------------------------------------------------

    async def load_check_states(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda c: c.fetch("SELECT key, body FROM check_states"))
        return {r[0]: loads(r[1]) for r in rows}

    async def save_check_state(self, check_key: str, state: Mapping[str, Any]) -> None:
        if state:
            await self._run(
                lambda c: c.execute(
                    "INSERT INTO check_states(key, body) VALUES ($1, $2) "
                    "ON CONFLICT (key) DO UPDATE SET body = excluded.body",
                    check_key,
                    dumps(state),
                )
            )
        else:
            await self._run(lambda c: c.execute("DELETE FROM check_states WHERE key = $1", check_key))

    async def get_probe_state(self, scope: str, key: str) -> Any:
        body = await self._run(
            lambda c: c.fetchval("SELECT body FROM probe_state WHERE scope = $1 AND key = $2", scope, key)
        )
        return None if body is None else loads(body)

    async def put_probe_state(self, scope: str, key: str, value: Any) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO probe_state(scope, key, body) VALUES ($1, $2, $3) "
                "ON CONFLICT (scope, key) DO UPDATE SET body = excluded.body",
                scope,
                key,
                dumps(value),
            )
        )

    # -- outbox ----------------------------------------------------------------------------

    async def enqueue(self, items: Sequence[OutboxItem]) -> int:
        async def enqueue(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                return await _insert_outbox(conn, items)

        return await self._run(enqueue)

    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        if self.outbox_gate is not None and not self.outbox_gate():
            return []
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT body FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 "
                "ORDER BY next_attempt_at, created_at, key LIMIT $2",
                now,
                limit,
            )
        )
        return [outbox_from_json(loads(r[0])) for r in rows]

    async def save_outbox_item(self, item: OutboxItem) -> None:
        await self._run(
            lambda c: c.execute(
                "UPDATE outbox SET status = $1, next_attempt_at = $2, body = $3 WHERE key = $4",
                item.status,
                item.next_attempt_at,
                dumps(outbox_to_json(item)),
                item.key,
            )
        )

    async def outbox_depth(self) -> int:
        return int(await self._run(lambda c: c.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")))

    async def list_outbox(self, incident_id: str | None = None, limit: int = 500) -> list[OutboxItem]:
        if incident_id is None:
            rows = await self._run(
                lambda c: c.fetch("SELECT body FROM outbox ORDER BY created_at, key LIMIT $1", limit)
            )
        else:
            rows = await self._run(
                lambda c: c.fetch(
                    "SELECT body FROM outbox WHERE incident_ids @> ARRAY[$1::text] ORDER BY created_at, key LIMIT $2",
                    incident_id,
                    limit,
                )
            )
        return [outbox_from_json(loads(r[0])) for r in rows]

    # -- overrides -------------------------------------------------------------------------

    async def save_override(self, override: Override) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO overrides(id, created_at, body) VALUES ($1, $2, $3) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                override.id,
                override.created_at,
                dumps(override_to_json(override)),
            )
        )

    async def list_overrides(self, limit: int = 50) -> list[Override]:
        rows = await self._run(
            lambda c: c.fetch("SELECT body FROM overrides ORDER BY created_at DESC, id DESC LIMIT $1", limit)
        )
        return [override_from_json(loads(r[0])) for r in rows]


async def _insert_outbox(conn: asyncpg.Connection, items: Sequence[OutboxItem]) -> int:
    added = 0
    for item in items:
        status = await conn.execute(
            "INSERT INTO outbox(key, status, next_attempt_at, created_at, incident_ids, body) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING",
            item.key,
            item.status,
            item.next_attempt_at,
            item.created_at,
            list(item.incident_ids),
            dumps(outbox_to_json(item)),
        )
        added += status == "INSERT 0 1"
    return added
