"""The Store contract, one suite run over every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import StoreFactory

from monitor.errors import StoreError
from monitor.incidents.model import Incident, Status, TimelineEntry
from monitor.results import Severity
from monitor.store import OutboxItem, Override, Store, StoreConflict, open_store

T0 = 1_764_000_000.0


def incident(
    iid: str = "INCIDENT-20251124-SEV1-001",
    *,
    site: str = "acme-shop",
    condition: str = "production_down",
    status: Status = Status.INVESTIGATING,
    opened_at: float = T0,
) -> Incident:
    return Incident(
        id=iid,
        site=site,
        client="acme",
        check="http",
        checks=("http",),
        condition=condition,
        severity=Severity.SEV1,
        status=status,
        halt=True,
        auto_resolve=True,
        description=f"{site}: answered 503 on 3 consecutive probes",
        impact="production site down",
        opened_at=opened_at,
        first_responder="owen",
        responders=("owen", "derek"),
        timeline=(TimelineEntry(opened_at, "opened", "monitor", "503"),),
        resolved_at=opened_at + 60 if status is Status.RESOLVED else None,
    )


def item(key: str, *, due: float = T0, created: float = T0, incidents: tuple[str, ...] = ("INC-1",)) -> OutboxItem:
    return OutboxItem(
        key=key,
        channel="ops-slack",
        recipient="owen",
        event="opened",
        incident_ids=incidents,
        payload={"text": "ü \u0000 nul and unicode", "n": 1},
        created_at=created,
        next_attempt_at=due,
    )


# -- incidents ------------------------------------------------------------------------------


async def test_create_and_get_round_trip(store: Store) -> None:
    """An incident reads back exactly as written."""
    inc = incident()
    assert await store.create_incident(inc)
    assert await store.get_incident(inc.id) == inc
    assert await store.get_incident("INCIDENT-19700101-SEV1-999") is None


async def test_create_refuses_second_open_incident_for_pair(store: Store) -> None:
    """A second open incident for the same (site, condition) is refused, and its outbox rows are not written."""
    assert await store.create_incident(incident("A"), [item("a")])
    assert not await store.create_incident(incident("B"), [item("b")])
    assert await store.get_incident("B") is None
    assert [i.key for i in await store.list_outbox()] == ["a"]
    assert await store.create_incident(incident("C", condition="data_loss"))
    assert await store.create_incident(incident("D", site="other"))


async def test_pair_can_open_again_after_resolution(store: Store) -> None:
    """Once the open incident is resolved, the pair may open a new one."""
    first = incident("A")
    await store.create_incident(first)
    await store.update_incident(replace(first, status=Status.RESOLVED, resolved_at=T0 + 60))
    assert await store.create_incident(incident("B", opened_at=T0 + 120))
    found = await store.find_open_incident("acme-shop", "production_down")
    assert found is not None
    assert found.id == "B"


async def test_concurrent_creates_open_exactly_one(make_store: StoreFactory) -> None:
    """Racing creators (two store instances, as two replicas) open one incident between them."""
    a, b = await make_store(), await make_store()
    results = await asyncio.gather(*(s.create_incident(incident(f"I-{n}")) for n, s in enumerate([a, b] * 10)))
    assert sum(results) == 1
    assert len(await a.list_incidents("open")) == 1


async def test_reopening_resolved_incident_over_an_open_one_fails(store: Store) -> None:
    """An update may not break the one-open-incident rule either."""
    old = incident("A", status=Status.RESOLVED)
    await store.create_incident(old)
    await store.create_incident(incident("B"))
    with pytest.raises(StoreError):
        await store.update_incident(replace(old, status=Status.MITIGATING))


async def test_incident_numbers_count_up_per_day(store: Store) -> None:
    """NNN counts up per day and each day starts at 1."""
    assert [await store.reserve_incident_number("20251124") for _ in range(3)] == [1, 2, 3]
    assert await store.reserve_incident_number("20251125") == 1
    assert await store.reserve_incident_number("20251124") == 4


async def test_incident_numbers_never_repeat_concurrently(make_store: StoreFactory) -> None:
    """Concurrent reservations from two store instances never hand out a number twice."""
    a, b = await make_store(), await make_store()
    got = await asyncio.gather(*(s.reserve_incident_number("20251124") for s in [a, b] * 25))
    assert sorted(got) == list(range(1, 51))


async def test_update_persists_timeline_and_outbox_together(store: Store) -> None:
    """An update writes the new timeline and its outbox rows."""
    inc = incident()
    await store.create_incident(inc)
    acked = replace(
        inc,
        status=Status.MITIGATING,
        acknowledged_at=T0 + 30,
        acknowledged_by="owen",
        timeline=(*inc.timeline, TimelineEntry(T0 + 30, "acknowledged", "owen", "on it")),
    )
    await store.update_incident(acked, [item("ack", incidents=(inc.id,))])
    got = await store.get_incident(inc.id)
    assert got == acked
    assert got is not None
    assert [e.event for e in got.timeline] == ["opened", "acknowledged"]
    assert [i.key for i in await store.list_outbox(inc.id)] == ["ack"]


async def test_update_is_a_compare_and_swap_on_the_row_version(store: Store) -> None:
    """A stored incident reads back with a version; an update from a stale read is refused
    (StoreConflict, its outbox rows not written) and the caller re-reads and re-applies."""
    await store.create_incident(incident())
    read = await store.get_incident(incident().id)
    assert read is not None
    assert read.version == 1
    acked = await store.update_incident(replace(read, status=Status.MITIGATING, acknowledged_by="owen"))
    assert acked.version == 2
    got = await store.get_incident(read.id)
    assert got is not None
    assert got.version == 2
    assert [i.version for i in await store.list_incidents("open")] == [2]
    found = await store.find_open_incident(read.site, read.condition)
    assert found is not None
    assert found.version == 2
    stale = replace(read, escalation_step=1, paged=("owen", "marcus"))  # built on version 1
    with pytest.raises(StoreConflict):
        await store.update_incident(stale, [item("escalated", incidents=(read.id,))])
    assert await store.list_outbox() == []
    got = await store.get_incident(read.id)
    assert got is not None
    assert got.acknowledged_by == "owen"
    assert got.escalation_step == 0
    redone = await store.update_incident(replace(got, escalation_step=1), [item("escalated")])
    assert redone.version == 3
    assert [i.key for i in await store.list_outbox()] == ["escalated"]


async def test_concurrent_updates_from_one_read_let_exactly_one_win(make_store: StoreFactory) -> None:
    """Two replicas (two store instances) changing the same read: one writes, the others conflict."""
    a, b = await make_store(), await make_store()
    await a.create_incident(incident())
    read = await a.get_incident(incident().id)
    assert read is not None

    async def change(s: Store, n: int) -> bool:
        try:
            await s.update_incident(replace(read, failures=n), [item(f"k{n}")])
        except StoreConflict:
            return False
        return True

    won = await asyncio.gather(*(change(s, n) for n, s in enumerate([a, b] * 5)))
    assert sum(won) == 1
    got = await b.get_incident(read.id)
    assert got is not None
    assert got.version == 2
    assert [i.key for i in await b.list_outbox()] == [f"k{won.index(True)}"]


async def test_update_of_unknown_incident_writes_nothing(store: Store) -> None:
    """Updating a missing incident raises StoreError and rolls back its outbox rows."""
    with pytest.raises(StoreError, match="no incident"):
        await store.update_incident(incident("GHOST"), [item("ghost")])
    assert await store.list_outbox() == []


async def test_list_filters_and_orders_newest_first(store: Store) -> None:
    """list_incidents filters open/resolved/all, newest first, and honours the limit."""
    await store.create_incident(incident("A", site="s1", opened_at=T0))
    await store.create_incident(incident("B", site="s2", opened_at=T0 + 10, status=Status.RESOLVED))
    await store.create_incident(incident("C", site="s3", opened_at=T0 + 20, status=Status.MITIGATING))
    assert [i.id for i in await store.list_incidents()] == ["C", "B", "A"]
    assert [i.id for i in await store.list_incidents("open")] == ["C", "A"]
    assert [i.id for i in await store.list_incidents("resolved")] == ["B"]
    assert [i.id for i in await store.list_incidents("all", limit=2)] == ["C", "B"]


async def test_find_open_incident_ignores_resolved(store: Store) -> None:
    """find_open_incident sees only open incidents of that exact pair."""
    await store.create_incident(incident("A", status=Status.RESOLVED))
    assert await store.find_open_incident("acme-shop", "production_down") is None
    await store.create_incident(incident("B"))
    found = await store.find_open_incident("acme-shop", "production_down")
    assert found is not None
    assert found.id == "B"
    assert await store.find_open_incident("acme-shop", "data_loss") is None


# -- rule and probe state -------------------------------------------------------------------


async def test_check_state_round_trips_and_empty_deletes(store: Store) -> None:
    """Check states read back as saved; saving an empty mapping deletes the row."""
    state = {"production_down": {"active": True, "failures": 3, "successes": 0, "severity": "SEV-1"}}
    await store.save_check_state("acme-shop/http", state)
    await store.save_check_state("acme-shop/tls", {"cert_expiry": {"active": False}})
    assert (await store.load_check_states())["acme-shop/http"] == state
    await store.save_check_state("acme-shop/http", {"production_down": {"active": False}})
    await store.save_check_state("acme-shop/tls", {})
    assert await store.load_check_states() == {"acme-shop/http": {"production_down": {"active": False}}}


async def test_probe_state_round_trips_per_scope(store: Store) -> None:
    """Probe state is per (scope, key), overwritable, and None when missing."""
    assert await store.get_probe_state("s/c", "rows") is None
    value = {"tables": {"orders": 1200}, "seen": [1, 2.5, "x", None, True]}
    await store.put_probe_state("s/c", "rows", value)
    await store.put_probe_state("other/c", "rows", 7)
    assert await store.get_probe_state("s/c", "rows") == value
    await store.put_probe_state("s/c", "rows", [])
    assert await store.get_probe_state("s/c", "rows") == []
    assert await store.get_probe_state("other/c", "rows") == 7


# -- outbox ---------------------------------------------------------------------------------


async def test_enqueue_is_idempotent_by_key(store: Store) -> None:
    """Enqueuing a key twice stores it once; the answer counts only new keys."""
    assert await store.enqueue([item("a"), item("b")]) == 2
    assert await store.enqueue([item("b"), item("c")]) == 1
    assert await store.enqueue([]) == 0
    assert [i.key for i in await store.list_outbox()] == ["a", "b", "c"]
    assert (await store.list_outbox())[0] == item("a")


async def test_due_outbox_orders_and_filters_by_due_time(store: Store) -> None:
    """Only pending items due by `now` come back, by next attempt, then creation, then key."""
    await store.enqueue(
        [
            item("late", due=T0 + 100),
            item("b", due=T0 + 5, created=T0 - 1),
            item("a", due=T0 + 5, created=T0 - 1),
            item("first", due=T0, created=T0 - 2),
            item("older", due=T0 + 5, created=T0 - 3),
        ]
    )
    assert [i.key for i in await store.due_outbox(T0 + 10)] == ["first", "older", "a", "b"]
    assert [i.key for i in await store.due_outbox(T0 + 10, limit=2)] == ["first", "older"]
    assert [i.key for i in await store.due_outbox(T0 - 1)] == []
    assert [i.key for i in await store.due_outbox(T0 + 100)][-1] == "late"


async def test_saved_outbox_items_leave_the_queue(store: Store) -> None:
    """Delivered and failed items are no longer due nor counted; retried ones move back."""
    a, b, c = item("a"), item("b"), item("c")
    await store.enqueue([a, b, c])
    await store.save_outbox_item(a.delivered(at=T0 + 1))
    await store.save_outbox_item(b.failed(at=T0 + 1, error="400 bad request"))
    await store.save_outbox_item(c.retried(at=T0 + 30, error="503"))
    assert [i.key for i in await store.due_outbox(T0 + 10)] == []
    assert [i.key for i in await store.due_outbox(T0 + 30)] == ["c"]
    assert await store.outbox_depth() == 1
    saved = {i.key: i for i in await store.list_outbox()}
    assert saved["a"].status == "delivered"
    assert saved["a"].delivered_at == T0 + 1
    assert saved["a"].attempts == 1
    assert saved["b"].status == "failed"
    assert saved["b"].last_error == "400 bad request"
    assert saved["c"] == c.retried(at=T0 + 30, error="503")


async def test_outbox_depth_counts_pending_due_or_not(store: Store) -> None:
    """outbox_depth counts every pending item, due or not."""
    assert await store.outbox_depth() == 0
    await store.enqueue([item("a"), item("b", due=T0 + 3600)])
    assert await store.outbox_depth() == 2


async def test_list_outbox_by_incident_matches_exact_ids(store: Store) -> None:
    """Filtering by incident id matches whole ids (INC-1 is not INC-10), grouped items included."""
    await store.enqueue(
        [
            item("one", incidents=("INC-1",)),
            item("ten", incidents=("INC-10",)),
            item("grouped", incidents=("INC-10", "INC-1")),
        ]
    )
    assert [i.key for i in await store.list_outbox("INC-1")] == ["grouped", "one"]
    assert [i.key for i in await store.list_outbox("INC-10")] == ["grouped", "ten"]
    assert len(await store.list_outbox(limit=1)) == 1


# -- overrides ------------------------------------------------------------------------------


async def test_overrides_round_trip_newest_first(store: Store) -> None:
    """Overrides list newest first; saving one again (revoked) updates it."""
    old = Override(id="o1", action="lift_halt", reason="r", by="owner", created_at=T0, until=T0 + 60)
    new = Override(
        id="o2", action="lift_halt", reason="r2", by="owner", created_at=T0 + 10, until=T0 + 70, incident_ids=("A",)
    )
    await store.save_override(old)
    await store.save_override(new)
    assert await store.list_overrides() == [new, old]
    revoked = replace(new, revoked_at=T0 + 20)
    await store.save_override(revoked)
    assert await store.list_overrides(limit=1) == [revoked]


# -- life cycle -----------------------------------------------------------------------------


async def test_reopening_keeps_everything(make_store: StoreFactory) -> None:
    """After close and reopen (a restart) every kind of record is still there."""
    first = await make_store()
    inc = incident()
    await first.create_incident(inc, [item("page", incidents=(inc.id,))])
    await first.reserve_incident_number("20251124")
    await first.save_check_state("acme-shop/http", {"production_down": {"active": True}})
    await first.put_probe_state("acme-shop/http", "k", {"v": 1})
    await first.save_override(Override(id="o", action="lift_halt", reason="r", by="o", created_at=T0, until=T0 + 1))
    await first.close()

    second = await make_store()
    assert await second.get_incident(inc.id) == inc
    assert await second.reserve_incident_number("20251124") == 2
    assert await second.load_check_states() == {"acme-shop/http": {"production_down": {"active": True}}}
    assert await second.get_probe_state("acme-shop/http", "k") == {"v": 1}
    assert [o.id for o in await second.list_overrides()] == ["o"]
    assert [i.key for i in await second.due_outbox(T0)] == ["page"]


async def test_migrations_are_idempotent_and_race_free(make_store: StoreFactory) -> None:
    """Several stores opening (and migrating) the same fresh database at once all succeed."""
    stores = await asyncio.gather(*(make_store() for _ in range(4)))
    await stores[0].create_incident(incident())
    again = await make_store()
    assert [i.id for i in await again.list_incidents()] == [incident().id]


async def test_ping_and_closed_store(make_store: StoreFactory) -> None:
    """ping answers on an open store; a closed one raises StoreError, not something obscure."""
    store = await make_store()
    await store.ping()
    await store.close()
    with pytest.raises(StoreError):
        await store.get_incident("x")


# -- backend-specific failure modes ---------------------------------------------------------


async def test_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a database gives a StoreError naming it, quickly (no hang)."""
    path = tmp_path / "monitor.db"
    path.write_bytes(b"this is not a sqlite database\n" * 200)
    store = open_store(f"sqlite:///{path}")
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"monitor\.db"):
        await asyncio.wait_for(store.open(), timeout=10)
    assert time.monotonic() - started < 10


async def test_unreachable_postgres_names_store_and_masks_password() -> None:
    """A refused connection is a StoreError naming host and database, never the password."""
    from pgserver import free_port

    url = f"postgresql://monitor:hunter2secret@127.0.0.1:{free_port()}/monitor"
    store = open_store(url)
    with pytest.raises(StoreError) as err:
        await asyncio.wait_for(store.open(), timeout=20)
    text = str(err.value)
    assert "postgresql store postgresql://monitor:***@127.0.0.1" in text
    assert "hunter2secret" not in text


async def test_wrong_postgres_password_is_masked(postgres_server: str) -> None:
    """Authentication failure is a StoreError without the (wrong) password in it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(postgres_server)
    bad = urlunsplit(parts._replace(netloc=f"{parts.username}:wrongpass123@{parts.hostname}:{parts.port}"))
    with pytest.raises(StoreError) as err:
        await open_store(bad).open()
    assert "wrongpass123" not in str(err.value)
    assert ":***@" in str(err.value)


async def test_newer_postgres_schema_is_refused(postgres_server: str) -> None:
    """A database migrated by a newer monitor is refused with a message saying so."""
    from pgserver import create_database

    from monitor.store.postgres import PostgresStore

    url = await create_database(postgres_server)
    store = PostgresStore(url)
    await store.open()
    await store._run(lambda c: c.execute("UPDATE monitor_schema SET version = 999"))
    await store.close()
    with pytest.raises(StoreError, match="newer than this monitor"):
        await PostgresStore(url).open()


def test_mask_url_hides_passwords() -> None:
    """mask_url hides the authority password and password= query parameters."""
    from monitor.store.postgres import mask_url

    assert mask_url("postgresql://u:p%40ss@db:5432/m?sslmode=require") == "postgresql://u:***@db:5432/m?sslmode=require"
    assert mask_url("postgresql://db/m?user=u&password=s3cret") == "postgresql://db/m?user=u&password=***"
    assert mask_url("postgresql://u@db/m") == "postgresql://u@db/m"
