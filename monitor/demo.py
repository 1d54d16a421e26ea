"""`monitor demo`: realistic local targets that fail in each of the protocol's ways, and the
engine running on them. Everything listens on 127.0.0.1; nothing leaves the machine.

Targets (ports match the bundled sites.yaml):

    9481  client websites: a healthy shop, one that goes 5xx after 20 s, one whose
          bundle leaks a Stripe secret key, one that is slow
    9482  a Supabase project whose `profiles` table has no RLS and whose `orders`
          table loses most of its rows after 30 s
    9483  a Stripe account with a duplicate charge
    9484  a Statuspage-style status page reporting degraded performance
    9489  a pager sink: the Slack / PagerDuty / webhook endpoints the bundled
          channels point at by default; every page it receives is logged
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time

from aiohttp import web

from monitor.fakes.statuspage import FakeStatuspage
from monitor.fakes.stripe import FakeStripe
from monitor.fakes.supabase import FakeSupabase

log = logging.getLogger("monitor.demo")

SITES_PORT, SUPABASE_PORT, STRIPE_PORT, STATUS_PORT, SINK_PORT = 9481, 9482, 9483, 9484, 9489
GOES_DOWN_AFTER = 20.0
ROWS_VANISH_AFTER = 30.0
# A made-up key in the shape of a live Stripe secret key; the secrets check must find it.
LEAKED_KEY = "sk_live_" + "51DEMO" + "x7Qf" * 6


class DemoSites:
    """Client websites on one port, one path prefix per site."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.app = web.Application()
        r = self.app.router
        r.add_get("/acme/", self.healthy)
        r.add_get("/globex/", self.goes_down)
        r.add_get("/initech/", self.leaky_page)
        r.add_get("/initech/static/app.js", self.leaky_script)
        r.add_get("/hooli/", self.slow)

    async def healthy(self, _: web.Request) -> web.Response:
        return web.Response(
            text="<html><h1>Acme shop</h1><button>Add to cart</button></html>", content_type="text/html"
        )

    async def goes_down(self, _: web.Request) -> web.Response:
        if time.monotonic() - self.started > GOES_DOWN_AFTER:
            return web.Response(status=503, text="<html>503 Service Unavailable</html>", content_type="text/html")
        return web.Response(text="<html>Globex store — Add to cart</html>", content_type="text/html")

    async def leaky_page(self, _: web.Request) -> web.Response:
        page = '<html><body>Initech app<script src="/initech/static/app.js"></script></body></html>'
        return web.Response(text=page, content_type="text/html")

    async def leaky_script(self, _: web.Request) -> web.Response:
        script = f'const stripe = Stripe("pk_live_demoPublishable");\nconst admin = "{LEAKED_KEY}";\n'
        return web.Response(text=script, content_type="application/javascript")

    async def slow(self, _: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="<html>Hooli blog</html>", content_type="text/html")


def pager_sink() -> web.Application:
    """Stands in for Slack, PagerDuty and a webhook receiver; logs each page it gets."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        kind = request.match_info["kind"]
        log.warning("page delivered to the %s stand-in (%d bytes)", kind, len(body), extra={"channel": kind})
        if kind == "pagerduty":
            return web.json_response({"status": "success", "message": "Event processed"}, status=202)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{kind}", receive)
    app.router.add_post("/{kind}/{rest:.*}", receive)
    return app


async def start_targets() -> list[object]:
    """Start every demo target on its port; return handles with an async stop()."""
    runners: list[object] = []
    for app, port in ((DemoSites().app, SITES_PORT), (pager_sink(), SINK_PORT)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)

    supabase = FakeSupabase()
    supabase.add_table("profiles", rows=25, rls=False)  # the RLS hole: anon can read it
    supabase.add_table("orders", rows=1200)
    supabase.add_backup("COMPLETED", time.time() - 3600)
    await supabase.start(SUPABASE_PORT)

    stripe = FakeStripe()
    for amount in (1999, 4999, 2500, 12000):
        stripe.add_charge(amount, age=600)
    first = stripe.add_charge(8900, customer="cus_DEMO42", payment_method="pm_DEMO42", age=300)
    stripe.add_duplicate(first, after=15)
    await stripe.start(STRIPE_PORT)

    status = FakeStatuspage("Supabase Status")
    status.set_page("minor", API="degraded_performance")
    await status.start(STATUS_PORT)

    async def vanish() -> None:
        await asyncio.sleep(ROWS_VANISH_AFTER)
        supabase.delete_rows("orders", 1100)
        log.warning("demo: 1,100 of 1,200 rows just vanished from acme's `orders` table")

    task = asyncio.create_task(vanish())
    return [*runners, supabase, stripe, status, task]


async def stop_targets(handles: list[object]) -> None:
    for handle in handles:
        if isinstance(handle, asyncio.Task):
            handle.cancel()
        elif isinstance(handle, web.AppRunner):
            await handle.cleanup()
        else:
            await handle.stop()  # type: ignore[attr-defined]


async def run_demo(config_path: str, *, listen: str | None = None) -> int:
    from monitor.cli import serve
    from monitor.config import Listen, load_config

    for name in ("MONITOR_RESPONDER_TOKEN", "MONITOR_OWNER_TOKEN"):
        os.environ.setdefault(name, secrets.token_urlsafe(18))
    config = load_config(config_path)
    address = Listen.parse(listen) if listen else config.monitor.listen
    handles = await start_targets()
    print(
        f"\nmonitor demo — targets on 127.0.0.1:{SITES_PORT}-{SINK_PORT}, engine on http://{address}/\n"
        f"  status page   http://{address}/\n"
        f"  incidents     monitor incidents list          (or GET /api/v1/incidents?status=open)\n"
        f"  halt gate     monitor halt-status             (exit 1 while halted)\n"
        f"  ack           MONITOR_RESPONDER_TOKEN={os.environ['MONITOR_RESPONDER_TOKEN']} "
        f"monitor incidents ack <ID> --by owen\n"
        f"  reports       {config.workspace}/chatroom.md and {config.workspace}/.tmp/incidents/\n"
        "Incidents open within a minute: a leaked key, an RLS hole and a duplicate charge at once,\n"
        f"a 5xx shop after {GOES_DOWN_AFTER:.0f}s, vanishing rows after {ROWS_VANISH_AFTER:.0f}s. Ctrl-C stops.\n",
        flush=True,
    )
    try:
        return await serve(config, address)
    finally:
        await stop_targets(handles)
