"""type: supabase against the fake Supabase project and Management API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from monitor.clock import FakeClock
from monitor.fakes.supabase import ANON_KEY, MANAGEMENT_TOKEN, SERVICE_KEY, FakeSupabase
from monitor.probes import ProbeContext
from monitor.probes._platform import Fraction
from monitor.probes.supabase import Backups, Migrations, SupabaseCheck, Watch, probe_supabase, version_key
from monitor.redact import Secret
from monitor.results import FailureKind, Severity

MakeCtx = Callable[..., ProbeContext]


def check(fake: FakeSupabase, **kw: object) -> SupabaseCheck:
    base = SupabaseCheck(
        url=fake.url,  # type: ignore[arg-type]
        anon_key=Secret(ANON_KEY),
        service_key=Secret(SERVICE_KEY),
        management_token=Secret(MANAGEMENT_TOKEN),
        project_ref=fake.ref,
        management_api=fake.url,  # type: ignore[arg-type]
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def found(result: object) -> list[tuple[str, Severity | None]]:
    return [(p.condition, p.severity) for p in result.problems]  # type: ignore[attr-defined]


async def test_healthy_project_passes(supabase: FakeSupabase, make_ctx: MakeCtx, clock: FakeClock) -> None:
    """Every part configured against a healthy project passes."""
    supabase.add_table("orders", 120)
    supabase.add_table("profiles", 5)
    supabase.add_backup("COMPLETED", clock.now() - 3600)
    supabase.set_migration_version("20260101120000")
    c = check(
        supabase,
        storage_health=True,
        tables=("orders",),
        services=("auth", "db", "rest"),
        protected_tables=("profiles",),
        watch=(Watch(table="orders", min_rows=10),),
        backups=Backups(),
        migrations=Migrations(view="schema_migrations"),
    )
    result = await probe_supabase(c, make_ctx())
    assert result.ok, result.problems
    assert "RLS canary" in result.detail


async def test_rls_off_is_security_breach(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """An anon read returning rows from a protected table is security_breach."""
    supabase.add_table("profiles", 3, rls=False)
    (problem,) = (await probe_supabase(check(supabase, protected_tables=("profiles",)), make_ctx())).problems
    assert problem.condition == "security_breach"
    assert "'profiles'" in problem.summary
    assert "1 row(s)" in problem.evidence[0]


async def test_rls_refusal_is_fine(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """An anon 401 (no grant) on a protected table passes the canary."""
    supabase.add_table("secrets", 3, anon_grant=False)
    assert (await probe_supabase(check(supabase, protected_tables=("secrets",)), make_ctx())).ok


async def test_row_count_collapse_is_data_loss(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A drop bigger than max_drop since the previous probe is data_loss, once."""
    supabase.add_table("orders", 1000)
    c = check(supabase, watch=(Watch(table="orders", max_drop=Fraction(0.2)),))
    assert (await probe_supabase(c, make_ctx())).ok
    supabase.delete_rows("orders", 300)
    (problem,) = (await probe_supabase(c, make_ctx())).problems
    assert problem.condition == "data_loss"
    assert problem.evidence == ("orders: 1000 -> 700 rows",)
    assert (await probe_supabase(c, make_ctx())).ok


async def test_small_drop_is_fine(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A drop within max_drop passes."""
    supabase.add_table("orders", 1000)
    c = check(supabase, watch=(Watch(table="orders", max_drop=Fraction(0.2)),))
    await probe_supabase(c, make_ctx())
    supabase.delete_rows("orders", 100)
    assert (await probe_supabase(c, make_ctx())).ok


async def test_count_survives_restart(supabase: FakeSupabase, make_ctx: MakeCtx, state: object) -> None:
    """The previous count lives in ctx.state, so a drop across a restart is still caught."""
    supabase.add_table("orders", 1000)
    c = check(supabase, watch=(Watch(table="orders"),))
    await probe_supabase(c, make_ctx())
    supabase.delete_rows("orders", 900)
    assert found(await probe_supabase(c, make_ctx(use_state=state))) == [("data_loss", None)]


async def test_vanished_table_is_data_loss(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A watched table answering 404 PGRST205 is data_loss."""
    supabase.add_table("orders", 10)
    c = check(supabase, watch=(Watch(table="orders"),))
    await probe_supabase(c, make_ctx())
    supabase.drop_table("orders")
    (problem,) = (await probe_supabase(c, make_ctx())).problems
    assert problem.condition == "data_loss"
    assert "vanished" in problem.summary


async def test_below_min_rows_is_data_loss(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A count below min_rows is data_loss (also on the first probe)."""
    supabase.add_table("orders", 0)
    (problem,) = (
        await probe_supabase(check(supabase, watch=(Watch(table="orders", min_rows=1),)), make_ctx())
    ).problems
    assert problem.condition == "data_loss"
    assert "0 rows" in problem.summary


async def test_stale_backup_is_data_loss_sev2(supabase: FakeSupabase, make_ctx: MakeCtx, clock: FakeClock) -> None:
    """The newest COMPLETED backup older than max_age is data_loss SEV-2."""
    supabase.add_backup("COMPLETED", clock.now() - 3 * 86400)
    assert found(await probe_supabase(check(supabase, backups=Backups()), make_ctx())) == [("data_loss", Severity.SEV2)]


async def test_failed_backup_is_data_loss(supabase: FakeSupabase, make_ctx: MakeCtx, clock: FakeClock) -> None:
    """The newest backup FAILED is data_loss SEV-2."""
    supabase.add_backup("COMPLETED", clock.now() - 7200)
    supabase.add_backup("FAILED", clock.now() - 60)
    (problem,) = (await probe_supabase(check(supabase, backups=Backups()), make_ctx())).problems
    assert "failed its latest backup" in problem.summary


async def test_pitr_expected(supabase: FakeSupabase, make_ctx: MakeCtx, clock: FakeClock) -> None:
    """PITR off while expect_pitr is set is data_loss SEV-2."""
    supabase.add_backup("COMPLETED", clock.now() - 60)
    result = await probe_supabase(check(supabase, backups=Backups(expect_pitr=True)), make_ctx())
    assert found(result) == [("data_loss", Severity.SEV2)]
    supabase.pitr_enabled = True
    assert (await probe_supabase(check(supabase, backups=Backups(expect_pitr=True)), make_ctx())).ok


async def test_migration_went_backwards(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """An applied version lower than the last one seen is data_loss."""
    c = check(supabase, migrations=Migrations(rpc="applied_version"))
    supabase.set_migration_version("20260102000000")
    assert (await probe_supabase(c, make_ctx())).ok
    supabase.set_migration_version("20251231000000")
    (problem,) = (await probe_supabase(c, make_ctx())).problems
    assert problem.condition == "data_loss"
    assert "went back" in problem.summary


async def test_migration_below_expected(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """An applied version below expected_version is data_loss."""
    supabase.set_migration_version("41")
    c = check(supabase, migrations=Migrations(view="schema_migrations", expected_version="42"))
    assert found(await probe_supabase(c, make_ctx())) == [("data_loss", None)]


def test_version_order() -> None:
    """Versions compare numerically part by part."""
    assert version_key("1.9") < version_key("1.10") < version_key("2")
    assert version_key("20240101_a") < version_key("20240102")


async def test_unhealthy_service(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """Management API health UNHEALTHY is api_failure, COMING_UP is degraded."""
    supabase.services["db"] = "UNHEALTHY"
    supabase.services["rest"] = "COMING_UP"
    result = await probe_supabase(check(supabase, services=("auth", "db", "rest")), make_ctx())
    assert [p.condition for p in result.problems] == ["api_failure", "degraded"]


async def test_storage_unhealthy(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """Storage health {"healthy": false} is api_failure."""
    supabase.storage_healthy = False
    (problem,) = (await probe_supabase(check(supabase, storage_health=True), make_ctx())).problems
    assert problem.condition == "api_failure"


async def test_missing_table_probe(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A probed table that answers 404 is api_failure."""
    (problem,) = (await probe_supabase(check(supabase, tables=("nope",)), make_ctx())).problems
    assert problem.condition == "api_failure"
    assert "404" in problem.summary


async def test_wrong_service_key_is_auth(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A 401 with the service key is api_failure kind auth, and other parts still run."""
    supabase.add_table("orders", 5)
    c = check(supabase, service_key=Secret("sb_secret_WRONGwrongWRONG0000"), watch=(Watch(table="orders"),))
    result = await probe_supabase(c, make_ctx())
    assert [(p.condition, p.kind) for p in result.problems] == [("api_failure", FailureKind.AUTH)]
    assert "auth health" in result.detail


async def test_wrong_management_token_is_auth(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A refused management token is api_failure kind auth."""
    c = check(supabase, management_token=Secret("sbp_" + "1" * 40), backups=Backups())
    (problem,) = (await probe_supabase(c, make_ctx())).problems
    assert problem.kind is FailureKind.AUTH


@pytest.mark.parametrize("status", [500, 503])
async def test_server_error(supabase: FakeSupabase, make_ctx: MakeCtx, status: int) -> None:
    """A 5xx from the health endpoint is api_failure bad_status."""
    supabase.fail(status)
    (problem,) = (await probe_supabase(check(supabase), make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.BAD_STATUS)


async def test_rate_limited(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A 429 from the Management API is api_failure naming the Retry-After."""
    supabase.fail(429, retry_after=30, path="/v1/projects")
    (problem,) = (await probe_supabase(check(supabase, auth_health=False, backups=Backups()), make_ctx())).problems
    assert problem.condition == "api_failure"
    assert "429" in problem.summary
    assert "30s" in problem.summary


async def test_invalid_json(supabase: FakeSupabase, make_ctx: MakeCtx) -> None:
    """A backups answer that is not JSON is invalid_json."""
    supabase.garble(path="/v1/projects")
    (problem,) = (await probe_supabase(check(supabase, auth_health=False, backups=Backups()), make_ctx())).problems
    assert problem.kind is FailureKind.INVALID_JSON


async def test_unreachable(dead_url: str, make_ctx: MakeCtx) -> None:
    """An unreachable project is api_failure refused."""
    c = SupabaseCheck(url=dead_url, anon_key=Secret(ANON_KEY))  # type: ignore[arg-type]
    (problem,) = (await probe_supabase(c, make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.REFUSED)
