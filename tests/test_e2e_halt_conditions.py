"""Each halt condition end to end through `monitor run`: the platform fakes misbehave, incidents open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.fakes.stripe import FakeStripe
from monitor.fakes.supabase import ANON_KEY, SERVICE_KEY, FakeSupabase

from .conftest import free_port, serve
from .test_e2e import Monitor, open_incidents, until

pytestmark = pytest.mark.slow

LEAKED = "sk_live_" + "E2Eleak" + "q9Zt" * 6

CONFIG = """
version: 1
monitor:
  listen: 127.0.0.1:{port}
  workspace: ./ws
defaults: {{interval: 500ms, timeout: 400ms}}
people: {{victor: {{name: Victor}}, diana: {{name: Diana}}, felix: {{name: Felix}}}}
conditions:
  security_breach: {{first_responders: [victor]}}
  data_loss: {{first_responders: [diana]}}
  financial_error: {{first_responders: [felix]}}
sites:
  - name: leaky-app
    checks:
      - {{type: secrets, url: "{leaky}"}}
  - name: rls-hole
    checks:
      - {{type: supabase, url: "{supabase}", anon_key: "{anon}", protected_tables: [profiles]}}
  - name: shrinking-db
    checks:
      - type: supabase
        url: "{supabase}"
        anon_key: "{anon}"
        service_key: "{service}"
        watch: [{{table: orders, max_drop: 20%}}]
  - name: money
    checks:
      - {{type: stripe, api_key: rk_test_fakeRestrictedKey000000000000, api_base: "{stripe}", currencies: [usd]}}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text='<html><script src="/app.js"></script></html>', content_type="text/html")

    async def script(_: web.Request) -> web.Response:
        return web.Response(text=f'const k = "{LEAKED}";', content_type="application/javascript")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/app.js", script)
    runner, leaky = await serve(app)
    supabase = FakeSupabase()
    supabase.add_table("profiles", rows=3, rls=True)
    supabase.add_table("orders", rows=1000)
    stripe = FakeStripe()
    stripe.add_charge(2500, age=600)
    port = free_port()
    text = CONFIG.format(
        port=port,
        leaky=leaky + "/",
        supabase=await supabase.start(),
        stripe=await stripe.start(),
        anon=ANON_KEY,
        service=SERVICE_KEY,
    )
    (tmp_path / "sites.yaml").write_text(text)
    m = Monitor(tmp_path, port)
    m.start()
    yield {"monitor": m, "supabase": supabase, "stripe": stripe, "folder": tmp_path}
    if m.proc and m.proc.poll() is None:
        m.proc.kill()
        m.proc.wait(10)
    await supabase.stop()
    await stripe.stop()
    await runner.cleanup()


def by_site(m: Monitor) -> dict[str, dict[str, Any]]:
    return {i["site"]: i for i in open_incidents(m)}


async def test_every_halt_condition_opens_a_sev1_halting_incident(world: dict[str, Any]) -> None:
    """Leaked key, RLS hole, vanished rows and a duplicate charge each open SEV-1, halt, and write a report."""
    m: Monitor = world["monitor"]
    await until(lambda: m.get("/readyz"), "readiness")
    incidents = await until(lambda: "leaky-app" in by_site(m) and by_site(m), "the leaked key to be found")
    leak = incidents["leaky-app"]
    assert (leak["condition"], leak["severity"], leak["halt"]) == ("security_breach", "SEV-1", True)
    assert LEAKED not in str(leak), "the key never appears in full"
    assert any("sk_live_…#" in e["detail"] for e in leak["timeline"]), leak["timeline"]
    assert "rls-hole" not in incidents, "RLS on: the anon key reads nothing"

    supabase: FakeSupabase = world["supabase"]
    supabase.tables["profiles"].rls = False
    supabase.delete_rows("orders", 900)
    stripe: FakeStripe = world["stripe"]
    first = stripe.add_charge(8900, customer="cus_E2E", payment_method="pm_E2E", age=120)
    stripe.add_duplicate(first, after=10)

    expected = {
        "rls-hole": "security_breach",
        "shrinking-db": "data_loss",
        "money": "financial_error",
    }
    incidents = await until(lambda: expected.keys() <= by_site(m).keys() and by_site(m), "all halt conditions")
    for site, condition in expected.items():
        incident = incidents[site]
        assert (incident["condition"], incident["severity"], incident["halt"]) == (condition, "SEV-1", True), incident
        report = world["folder"] / "ws" / ".tmp" / "incidents" / f"{incident['id']}.md"
        assert "- **Impact**: " in report.read_text() and f"halt condition {condition} is active" in report.read_text()
    assert "ch_" in incidents["money"]["description"] or any(
        "ch_" in e["detail"] for e in incidents["money"]["timeline"]
    )
    halt = m.get("/api/v1/halt")
    assert set(halt["conditions"]) == {"security_breach", "data_loss", "financial_error"}
    assert m.cli("halt-status").returncode == 1

    await asyncio.sleep(2)  # these wait for a person: passing probes never resolve them
    supabase.tables["profiles"].rls = True
    await asyncio.sleep(2)
    assert expected.keys() <= by_site(m).keys()
    assert m.stop() == 0
