"""The embedded store: stdlib sqlite3 in WAL mode, driven from one worker thread.

All SQL runs on a single dedicated thread so the event loop never blocks on disk
and the connection is never shared across threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

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

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        condition TEXT NOT NULL,
        status TEXT NOT NULL,
        opened_at REAL NOT NULL,
        body BLOB NOT NULL
    );
    CREATE UNIQUE INDEX incidents_one_open ON incidents(site, condition) WHERE status != 'RESOLVED';
    CREATE INDEX incidents_opened ON incidents(opened_at);
    CREATE TABLE incident_numbers (day TEXT PRIMARY KEY, last INTEGER NOT NULL);
    CREATE TABLE check_states (key TEXT PRIMARY KEY, body BLOB NOT NULL);
    CREATE TABLE probe_state (scope TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (scope, key));
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        next_attempt_at REAL NOT NULL,
        created_at REAL NOT NULL,
        incident_ids TEXT NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
    CREATE TABLE overrides (id TEXT PRIMARY KEY, created_at REAL NOT NULL, body BLOB NOT NULL);
    """,
    # 2: a row version per incident (optimistic concurrency, see monitor/store/__init__.py)
    """
    ALTER TABLE incidents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    """,
]


class SqliteStore:
    def __init__(self, url: str, *, base_dir: str = ".", busy_timeout: float = 5.0) -> None:
        self.url = url
        # sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:
        path = url.removeprefix("sqlite://").removeprefix("/")
        self.memory = path in ("", ":memory:")
        self.path = Path(":memory:") if self.memory else Path(base_dir) / path
        self.busy_timeout = busy_timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    # -- plumbing --------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise StoreError(f"{self._name()}: store is not open")
            try:
                return fn(self._db)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StoreLocked(f"{self._name()}: database is locked by another process ({exc})") from exc
                raise StoreError(f"{self._name()}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self._name()}: {exc}") from exc

        if self._db is None:  # closed: the worker thread is gone too
            raise StoreError(f"{self._name()}: store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _name(self) -> str:
        return f"sqlite store {self.path}"

    async def open(self) -> None:
        def connect() -> None:
            try:
                if not self.memory:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
                self._set_up(db)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc):
                    raise StoreLocked(f"{self._name()}: database is locked by another process") from exc
                raise StoreError(f"{self._name()}: cannot open: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self._name()}: cannot open: {exc} (is it a monitor database?)") from exc
            except OSError as exc:
                raise StoreError(f"{self._name()}: cannot open: {exc}") from exc
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._pool, connect)

    def _set_up(self, db: sqlite3.Connection) -> None:
        """WAL mode and migrations. SQLite answers "locked" at once, without waiting, when two
        connections upgrade their locks on a fresh file together, so retry until busy_timeout."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                self._migrate(db)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self, db: sqlite3.Connection) -> None:
        # The version is read inside the write lock: two processes opening a fresh file at once
        # must not both run migration 1.
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self._name()}: schema version {version} is newer than this monitor ({len(MIGRATIONS)})"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._pool, close)
        self._pool.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    # -- incidents -------------------------------------------------------------------------

    async def reserve_incident_number(self, day: str) -> int:
        def reserve(db: sqlite3.Connection) -> int:
            row = db.execute(
                "INSERT INTO incident_numbers(day, last) VALUES (?, 1) "
                "ON CONFLICT(day) DO UPDATE SET last = last + 1 RETURNING last",
                (day,),
            ).fetchone()
            return int(row[0])

        return await self._run(reserve)

    async def create_incident(self, incident: Incident, outbox: Sequence[OutboxItem] = ()) -> bool:
        def create(db: sqlite3.Connection) -> bool:
            with _tx(db):
                try:
                    db.execute(
                        "INSERT INTO incidents(id, site, condition, status, opened_at, body) VALUES (?,?,?,?,?,?)",
                        incident_row(incident),
                    )
                except sqlite3.IntegrityError:
                    return False
                _insert_outbox(db, outbox)
            return True

        return await self._run(create)

    async def update_incident(self, incident: Incident, outbox: Sequence[OutboxItem] = ()) -> Incident:
        def update(db: sqlite3.Connection) -> int:
            with _tx(db):
                row = db.execute(
                    "UPDATE incidents SET status=?, body=?, version=version + 1 "
                    "WHERE id=? AND (? = 0 OR version = ?) RETURNING version",
                    (
                        incident.status.value,
                        dumps(incident.to_record()),
                        incident.id,
                        incident.version,
                        incident.version,
                    ),
                ).fetchone()
                if row is None:
                    if db.execute("SELECT 1 FROM incidents WHERE id=?", (incident.id,)).fetchone():
                        raise StoreConflict(f"{self._name()}: incident {incident.id} changed since it was read")
                    raise StoreError(f"{self._name()}: no incident {incident.id} to update")
                _insert_outbox(db, outbox)
                return int(row[0])

        return replace(incident, version=await self._run(update))

    async def get_incident(self, incident_id: str) -> Incident | None:
        rows = await self._run(
            lambda db: db.execute("SELECT body, version FROM incidents WHERE id=?", (incident_id,)).fetchall()
        )
        return incident_from_row(rows[0]) if rows else None

    async def find_open_incident(self, site: str, condition: str) -> Incident | None:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT body, version FROM incidents WHERE site=? AND condition=? AND status != 'RESOLVED'",
                (site, condition),
            ).fetchall()
        )
        return incident_from_row(rows[0]) if rows else None

    async def list_incidents(self, status: IncidentFilter = "all", limit: int = 200) -> list[Incident]:
        where = {"open": "WHERE status != 'RESOLVED'", "resolved": "WHERE status = 'RESOLVED'", "all": ""}[status]
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT body, version FROM incidents {where} ORDER BY opened_at DESC, id DESC LIMIT ?",  # noqa: S608
                (limit,),
            ).fetchall()
        )
        return [incident_from_row(r) for r in rows]

    # -- rule and probe state --------------------------------------------------------------

    async def load_check_states(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda db: db.execute("SELECT key, body FROM check_states").fetchall())
        return {key: loads(body) for key, body in rows}

    async def save_check_state(self, check_key: str, state: Mapping[str, Any]) -> None:
        def save(db: sqlite3.Connection) -> None:
            if state:
                db.execute(
                    "INSERT INTO check_states(key, body) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET body=excluded.body",
                    (check_key, dumps(state)),
                )
            else:
                db.execute("DELETE FROM check_states WHERE key=?", (check_key,))

        await self._run(save)

    async def get_probe_state(self, scope: str, key: str) -> Any:
        rows = await self._run(
            lambda db: db.execute("SELECT body FROM probe_state WHERE scope=? AND key=?", (scope, key)).fetchall()
        )
        return loads(rows[0][0]) if rows else None

    async def put_probe_state(self, scope: str, key: str, value: Any) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO probe_state(scope, key, body) VALUES (?,?,?) "
                "ON CONFLICT(scope, key) DO UPDATE SET body=excluded.body",
                (scope, key, dumps(value)),
            )
        )

    # -- outbox ----------------------------------------------------------------------------

    async def enqueue(self, items: Sequence[OutboxItem]) -> int:
        def enqueue(db: sqlite3.Connection) -> int:
            with _tx(db):
                return _insert_outbox(db, items)

        return await self._run(enqueue)

    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT body FROM outbox WHERE status='pending' AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, created_at, key LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        return [outbox_from_json(loads(r[0])) for r in rows]

    async def save_outbox_item(self, item: OutboxItem) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE outbox SET status=?, next_attempt_at=?, body=? WHERE key=?",
                (item.status, item.next_attempt_at, dumps(outbox_to_json(item)), item.key),
            )
        )

    async def outbox_depth(self) -> int:
        row = await self._run(lambda db: db.execute("SELECT count(*) FROM outbox WHERE status='pending'").fetchone())
        return int(row[0])

    async def list_outbox(self, incident_id: str | None = None, limit: int = 500) -> list[OutboxItem]:
        def query(db: sqlite3.Connection) -> list[Any]:
            if incident_id is None:
                return db.execute("SELECT body FROM outbox ORDER BY created_at, key LIMIT ?", (limit,)).fetchall()
            return db.execute(
                "SELECT body FROM outbox WHERE incident_ids LIKE ? ORDER BY created_at, key LIMIT ?",
                (f"%|{incident_id}|%", limit),
            ).fetchall()

        return [outbox_from_json(loads(r[0])) for r in await self._run(query)]

    # -- overrides -------------------------------------------------------------------------

    async def save_override(self, override: Override) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO overrides(id, created_at, body) VALUES (?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET body=excluded.body",
                (override.id, override.created_at, dumps(override_to_json(override))),
            )
        )

    async def list_overrides(self, limit: int = 50) -> list[Override]:
        rows = await self._run(
            lambda db: db.execute("SELECT body FROM overrides ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        )
        return [override_from_json(loads(r[0])) for r in rows]


class _tx:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _insert_outbox(db: sqlite3.Connection, items: Sequence[OutboxItem]) -> int:
    added = 0
    for item in items:
        cur = db.execute(
            "INSERT INTO outbox(key, status, next_attempt_at, created_at, incident_ids, body) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(key) DO NOTHING",
            (
                item.key,
                item.status,
                item.next_attempt_at,
                item.created_at,
                "|" + "|".join(item.incident_ids) + "|",
                dumps(outbox_to_json(item)),
            ),
        )
        added += cur.rowcount
    return added
