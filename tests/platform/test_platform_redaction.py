"""No configured or leaked secret ever appears in full in a ProbeResult."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from monitor.clock import FakeClock
from monitor.fakes import FakeServer
from monitor.fakes.stripe import FakeStripe
from monitor.fakes.supabase import ANON_KEY, MANAGEMENT_TOKEN, SERVICE_KEY, FakeSupabase
from monitor.probes import ProbeContext
from monitor.probes.secrets import SecretsCheck, probe_secrets
from monitor.probes.stripe import StripeCheck, probe_stripe
from monitor.probes.supabase import Backups, SupabaseCheck, Watch, probe_supabase
from monitor.redact import Secret

MakeCtx = Callable[..., ProbeContext]
LEAKED = ["sk_live_" + "Z" * 40, "AKIAZZZZZZZZZZZZZZZZ", "sb_secret_LEAKEDleakedLEAKED0000"]


class LeakySite(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_get("/", self._page)
        self.app.router.add_get("/app.js", self._js)

    async def _page(self, _r: web.Request) -> web.Response:
        return web.Response(
            text=f'<script src="/app.js"></script><script>var a="{LEAKED[0]}"</script>', content_type="text/html"
        )

    async def _js(self, _r: web.Request) -> web.Response:
        return web.Response(text=f'var b="{LEAKED[1]}"; var c="{LEAKED[2]}";', content_type="application/javascript")


@pytest.fixture
async def leaky() -> AsyncIterator[LeakySite]:
    site = LeakySite()
    await site.start()
    yield site
    await site.stop()


async def test_no_secret_in_any_result(
    leaky: LeakySite, stripe: FakeStripe, supabase: FakeSupabase, make_ctx: MakeCtx, clock: FakeClock
) -> None:
    """Leaked keys, rejected keys and configured keys appear nowhere in repr(result), in failures or findings."""
    wrong_stripe = "rk_live_WRONGwrongWRONGwrong0000"
    wrong_service = "sb_secret_WRONGwrongWRONG0000"
    supabase.add_table("orders", 10)
    results = [
        await probe_secrets(SecretsCheck(url=leaky.url), make_ctx()),  # type: ignore[arg-type]
        await probe_stripe(StripeCheck(api_key=Secret(wrong_stripe), api_base=stripe.url), make_ctx()),  # type: ignore[arg-type]
        await probe_supabase(
            SupabaseCheck(
                url=supabase.url,  # type: ignore[arg-type]
                anon_key=Secret(ANON_KEY),
                service_key=Secret(wrong_service),
                management_token=Secret(MANAGEMENT_TOKEN),
                project_ref=supabase.ref,
                management_api=supabase.url,  # type: ignore[arg-type]
                watch=(Watch(table="orders"),),
                backups=Backups(),
                storage_health=True,
            ),
            make_ctx(),
        ),
    ]
    assert len(results[0].problems[0].evidence) == 3
    assert all(not r.ok for r in results)
    text = "\n".join(repr(r) for r in results)
    for secret in [*LEAKED, wrong_stripe, wrong_service, ANON_KEY, SERVICE_KEY, MANAGEMENT_TOKEN]:
        assert secret not in text
