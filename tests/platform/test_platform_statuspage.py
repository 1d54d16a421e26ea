"""type: statuspage against the fake status page."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from monitor.fakes.statuspage import FakeStatuspage
from monitor.probes import ProbeContext
from monitor.probes.statuspage import StatuspageCheck, probe_statuspage
from monitor.results import FailureKind, Severity

MakeCtx = Callable[..., ProbeContext]


def check(url: str, **kw: object) -> StatuspageCheck:
    return StatuspageCheck(url=url, **kw)  # type: ignore[arg-type]


async def test_all_operational_passes(statuspage: FakeStatuspage, make_ctx: MakeCtx) -> None:
    """A page reporting indicator none is a passing probe."""
    result = await probe_statuspage(check(statuspage.url), make_ctx())
    assert result.ok, result.problems
    assert "page: none" in result.detail


@pytest.mark.parametrize(
    ("indicator", "condition"),
    [("major", "dependency_outage"), ("critical", "dependency_outage"), ("minor", "degraded")],
)
async def test_indicator_maps_to_condition(
    statuspage: FakeStatuspage, make_ctx: MakeCtx, indicator: str, condition: str
) -> None:
    """major/critical are a dependency outage, minor is degraded."""
    statuspage.set_page(indicator)
    result = await probe_statuspage(check(statuspage.url), make_ctx())
    assert [p.condition for p in result.problems] == [condition]


async def test_maintenance_is_noted_not_a_problem(statuspage: FakeStatuspage, make_ctx: MakeCtx) -> None:
    """Scheduled maintenance passes and says so in detail."""
    statuspage.set_page("maintenance", API="under_maintenance")
    result = await probe_statuspage(check(statuspage.url, components=("API",)), make_ctx())
    assert result.ok
    assert "maintenance" in result.detail


async def test_only_selected_components_are_judged(statuspage: FakeStatuspage, make_ctx: MakeCtx) -> None:
    """With components listed, an outage elsewhere on the page does not count."""
    statuspage.set_page("major", Dashboard="major_outage", API="degraded_performance")
    result = await probe_statuspage(check(statuspage.url, components=("API",)), make_ctx())
    assert [(p.condition, "'API'" in p.summary) for p in result.problems] == [("degraded", True)]


async def test_partial_outage_component_is_dependency_outage(statuspage: FakeStatuspage, make_ctx: MakeCtx) -> None:
    """A selected component in partial_outage is a dependency outage."""
    statuspage.set_page("major", API="partial_outage")
    result = await probe_statuspage(check(statuspage.url, components=("API",)), make_ctx())
    assert [p.condition for p in result.problems] == ["dependency_outage"]


async def test_missing_component_is_a_config_drift(statuspage: FakeStatuspage, make_ctx: MakeCtx) -> None:
    """A listed component that is not on the page is api_failure SEV-3."""
    result = await probe_statuspage(check(statuspage.url, components=("Payments",)), make_ctx())
    assert [(p.condition, p.severity) for p in result.problems] == [("api_failure", Severity.SEV3)]


@pytest.mark.parametrize(("large", "condition"), [("down", "dependency_outage"), ("degraded", "degraded")])
async def test_stripe_feed(statuspage: FakeStatuspage, make_ctx: MakeCtx, large: str, condition: str) -> None:
    """Stripe's largestatus down/degraded map like major/minor."""
    statuspage.set_stripe(large)
    result = await probe_statuspage(check(statuspage.url, format="stripe"), make_ctx())
    assert [p.condition for p in result.problems] == [condition]


async def test_stripe_feed_component(statuspage: FakeStatuspage, make_ctx: MakeCtx) -> None:
    """A selected Stripe service (webhooks) that is down is a dependency outage; up passes."""
    statuspage.set_stripe("degraded", webhooks="down")
    assert (await probe_statuspage(check(statuspage.url, format="stripe", components=("api",)), make_ctx())).ok
    result = await probe_statuspage(check(statuspage.url, format="stripe", components=("webhooks",)), make_ctx())
    assert [p.condition for p in result.problems] == ["dependency_outage"]


@pytest.mark.parametrize("status", [500, 503, 429, 401])
async def test_error_answer_is_api_failure_sev3(statuspage: FakeStatuspage, make_ctx: MakeCtx, status: int) -> None:
    """A status page answering an error says nothing about the platform: api_failure SEV-3."""
    statuspage.fail(status, retry_after=30 if status == 429 else None)
    result = await probe_statuspage(check(statuspage.url), make_ctx())
    (problem,) = result.problems
    assert (problem.condition, problem.severity) == ("api_failure", Severity.SEV3)
    assert "status unknown" in problem.summary


async def test_invalid_json_is_api_failure(statuspage: FakeStatuspage, make_ctx: MakeCtx) -> None:
    """A 200 that is not JSON is classified invalid_json."""
    statuspage.garble()
    (problem,) = (await probe_statuspage(check(statuspage.url), make_ctx())).problems
    assert (problem.condition, problem.kind) == ("api_failure", FailureKind.INVALID_JSON)


async def test_unreachable_is_api_failure_not_outage(dead_url: str, make_ctx: MakeCtx) -> None:
    """An unreachable status page is api_failure (refused), never dependency_outage."""
    (problem,) = (await probe_statuspage(check(dead_url), make_ctx())).problems
    assert (problem.condition, problem.kind, problem.severity) == ("api_failure", FailureKind.REFUSED, Severity.SEV3)
