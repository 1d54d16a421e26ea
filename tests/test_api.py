"""The HTTP API: routes, token auth, JSON errors naming the field, and the status page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.api import create_app
from monitor.clock import FakeClock
from monitor.engine import Engine

from .test_engine import CONFIG, DOWN, feed

TOKENS = """
monitor:
  tokens: {responder: responder-token-0123456789, owner: owner-token-0123456789}
"""
RESPONDER = {"Authorization": "Bearer responder-token-0123456789"}
OWNER = {"Authorization": "Bearer owner-token-0123456789"}


@pytest.fixture
async def api(engine_for, config_from) -> AsyncIterator[tuple[TestClient, Engine, FakeClock]]:
    clock = FakeClock()
    engine = await engine_for(config_from(CONFIG + TOKENS), clock)
    client = TestClient(TestServer(create_app(engine)))
    await client.start_server()
    yield client, engine, clock
    await client.close()


async def open_incident(engine: Engine, clock: FakeClock) -> str:
    await feed(engine, clock, [DOWN] * 3)
    return engine.open_incidents()[0].id


async def test_health_and_readiness(api) -> None:
    """/healthz is 200 while alive; /readyz is 200 once the store is open."""
    client, _, _ = api
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_incident_json_has_the_contract_fields(api) -> None:
    """GET /api/v1/incidents/{id} carries every field SPEC §6 names, times in RFC 3339 UTC."""
    client, engine, clock = api
    iid = await open_incident(engine, clock)
    doc = await (await client.get(f"/api/v1/incidents/{iid}")).json()
    for key in (
        "id",
        "site",
        "check",
        "condition",
        "severity",
        "status",
        "halt",
        "opened_at",
        "acknowledged_at",
        "resolved_at",
        "first_responder",
        "paged",
        "timeline",
    ):
        assert key in doc
    assert doc["opened_at"].endswith("Z") and doc["halt"] is True and doc["first_responder"] == "owen"
    assert set(doc["timeline"][0]) == {"at", "event", "by", "detail"}
    listed = await (await client.get("/api/v1/incidents?status=open")).json()
    assert [i["id"] for i in listed["incidents"]] == [iid]


async def test_ack_and_resolve_need_the_responder_token(api) -> None:
    """No token or a wrong one: 401 with a JSON error; the right one acknowledges."""
    client, engine, clock = api
    iid = await open_incident(engine, clock)
    missing = await client.post(f"/api/v1/incidents/{iid}/ack", json={"by": "owen"})
    assert missing.status == 401 and "error" in await missing.json()
    wrong = await client.post(
        f"/api/v1/incidents/{iid}/ack", json={"by": "owen"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status == 401
    ok = await client.post(f"/api/v1/incidents/{iid}/ack", json={"by": "owen"}, headers=RESPONDER)
    assert ok.status == 200 and (await ok.json())["status"] == "MITIGATING"
    done = await client.post(
        f"/api/v1/incidents/{iid}/resolve", json={"by": "owen", "note": "fixed"}, headers=RESPONDER
    )
    assert (await done.json())["status"] == "RESOLVED"
    again = await client.post(f"/api/v1/incidents/{iid}/resolve", json={"by": "owen"}, headers=RESPONDER)
    assert again.status == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "by"),
        ({"by": 7}, "by"),
        ({"by": "nobody"}, "by"),
        ({"by": "owen", "extra": 1}, "extra"),
        ({"by": "owen", "note": ["x"]}, "note"),
    ],
)
async def test_malformed_bodies_are_400_naming_the_field(api, body: dict[str, object], field: str) -> None:
    """A bad body is refused with 400 and the field at fault."""
    client, engine, clock = api
    iid = await open_incident(engine, clock)
    resp = await client.post(f"/api/v1/incidents/{iid}/resolve", json=body, headers=RESPONDER)
    assert resp.status == 400 and (await resp.json())["field"] == field


async def test_not_json_and_unknown_incident(api) -> None:
    """Garbage is 400; an unknown id is 404."""
    client, engine, clock = api
    iid = await open_incident(engine, clock)
    garbage = await client.post(f"/api/v1/incidents/{iid}/ack", data=b"\xff{not json", headers=RESPONDER)
    assert garbage.status == 400
    unknown = await client.post(
        "/api/v1/incidents/INCIDENT-20990101-SEV1-001/ack", json={"by": "owen"}, headers=RESPONDER
    )
    assert unknown.status == 404
    assert (await client.get("/api/v1/incidents/nope")).status == 404


async def test_override_needs_the_owner_token_and_lifts_the_halt(api) -> None:
    """The responder token cannot lift a halt; the owner's can, with a reason and an expiry."""
    client, engine, clock = api
    await open_incident(engine, clock)
    body = {"action": "lift_halt", "reason": "hotfix", "until": "30m"}
    assert (await client.post("/api/v1/override", json=body, headers=RESPONDER)).status == 401
    resp = await client.post("/api/v1/override", json=body, headers=OWNER)
    doc = await resp.json()
    assert resp.status == 200 and doc["halted"] is False and doc["override"]["reason"] == "hotfix"
    halt = await (await client.get("/api/v1/halt")).json()
    assert set(halt) >= {"halted", "conditions", "incidents", "override"}
    bad = await client.post(
        "/api/v1/override", json={"action": "lift_halt", "reason": "x", "until": "yesterday"}, headers=OWNER
    )
    assert bad.status == 400 and (await bad.json())["field"] == "until"


async def test_status_json_and_page_show_the_incident_and_banner(api) -> None:
    """The status JSON lists sites and checks; the HTML page shows the halt banner and incident."""
    client, engine, clock = api
    iid = await open_incident(engine, clock)
    status = await (await client.get("/api/v1/status")).json()
    site = next(s for s in status["sites"] if s["name"] == "acme-shop")
    assert site["state"] == "down" and site["checks"][0]["last_result"]["status_code"] == 503
    page = await (await client.get("/")).text()
    assert "HALTED" in page and iid in page and "<script" not in page


async def test_metrics_expose_the_contract_names(api) -> None:
    """/metrics carries the SPEC §7 families with their labels."""
    client, engine, clock = api
    await open_incident(engine, clock)
    text = await (await client.get("/metrics")).text()
    assert 'monitor_probe_success{check="http",site="acme-shop"} 0.0' in text
    assert 'monitor_halt_active{condition="production_down"} 1.0' in text
    assert 'monitor_incidents_open{condition="production_down",severity="SEV-1"} 1.0' in text
    assert 'monitor_condition_active{condition="production_down",severity="SEV-1",site="acme-shop"} 1.0' in text
    assert 'monitor_probes_total{check="http",result="bad_status",site="acme-shop"} 3.0' in text
    assert "monitor_probe_duration_seconds_bucket" in text and "monitor_schedule_lag_seconds_bucket" in text
    assert "monitor_notification_queue_depth" in text


async def test_oversized_body_is_413(api) -> None:
    """Bodies over 64 KiB are refused before parsing."""
    client, engine, clock = api
    iid = await open_incident(engine, clock)
    resp = await client.post(f"/api/v1/incidents/{iid}/ack", data=b"x" * 100_000, headers=RESPONDER)
    assert resp.status == 413


async def test_silence_a_site_then_lift_it(api) -> None:
    """A silenced site opens no incident; silencing needs the responder token and a reason and duration."""
    client, engine, clock = api
    body = {"by": "owen", "reason": "planned migration", "duration": "1h"}
    assert (await client.post("/api/v1/sites/acme-shop/silence", json=body)).status == 401
    assert (await client.post("/api/v1/sites/nope/silence", json=body, headers=RESPONDER)).status == 404
    bad = await client.post("/api/v1/sites/acme-shop/silence", json={**body, "duration": "forever"}, headers=RESPONDER)
    assert bad.status == 400 and (await bad.json())["field"] == "duration"
    ok = await client.post("/api/v1/sites/acme-shop/silence", json=body, headers=RESPONDER)
    assert ok.status == 200
    await feed(engine, clock, [DOWN] * 4)
    assert engine.open_incidents() == []
    view = await (await client.get("/api/v1/maintenance")).json()
    assert "acme-shop" in view["sites"]
    metrics = await (await client.get("/metrics")).text()
    assert 'monitor_site_maintenance{site="acme-shop"} 1.0' in metrics
    lifted = await client.delete("/api/v1/sites/acme-shop/silence", json={"by": "owen"}, headers=RESPONDER)
    assert lifted.status == 200 and len((await lifted.json())["ended"]) == 1
    await feed(engine, clock, [DOWN])
    await engine.tick()
    assert [i.condition for i in engine.open_incidents()] == ["production_down"], "still failing when it ends: opens"


async def test_ack_with_a_note_and_notes_on_the_timeline(api) -> None:
    """An ack's note and a separate note both land on the timeline with who wrote them."""
    client, engine, clock = api
    iid = await open_incident(engine, clock)
    await client.post(
        f"/api/v1/incidents/{iid}/ack", json={"by": "owen", "note": "looking at the LB"}, headers=RESPONDER
    )
    resp = await client.post(
        f"/api/v1/incidents/{iid}/notes", json={"by": "derek", "note": "DB is fine"}, headers=RESPONDER
    )
    timeline = (await resp.json())["timeline"]
    assert [(e["event"], e["by"], e["detail"]) for e in timeline if e["event"] == "note"] == [
        ("note", "owen", "looking at the LB"),
        ("note", "derek", "DB is fine"),
    ]
    empty = await client.post(f"/api/v1/incidents/{iid}/notes", json={"by": "derek", "note": " "}, headers=RESPONDER)
    assert empty.status == 400
