"""The http probe against real local targets: every answer and every failure is classified."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from monitor.clock import SystemClock
from monitor.config import parse_config
from monitor.probes import ProbeContext
from monitor.probes._http import trace_config
from monitor.probes.http import HttpCheck, StatusSpec, json_path, probe_http
from monitor.results import FailureKind, ProbeResult

from .conftest import Target, free_port


class MemoryState:
    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    async def get(self, key: str) -> object:
        return self.data.get(key)

    async def put(self, key: str, value: object) -> None:
        self.data[key] = value


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trace_configs=[trace_config()]) as s:
        yield s


def check_of(yaml_check: str) -> HttpCheck:
    config = parse_config(f"version: 1\nsites:\n  - name: s\n    checks:\n      - {yaml_check}\n", "t.yaml", {})
    params = config.checks[0].params
    assert isinstance(params, HttpCheck)
    return params


async def probe(session: aiohttp.ClientSession, yaml_check: str, timeout: float = 2.0) -> ProbeResult:
    ctx = ProbeContext(
        site="s", check="http", timeout=timeout, session=session, clock=SystemClock(), state=MemoryState()
    )
    return await probe_http(check_of(yaml_check), ctx)


async def test_healthy_page_passes_with_timings(session: aiohttp.ClientSession, target: Target) -> None:
    """200 with the expected text: ok, status recorded, phases measured."""
    result = await probe(
        session, f'{{type: http, url: "{target.url}", expect: {{status: 200, body_contains: "Add to cart"}}}}'
    )
    assert result.ok and result.status_code == 200
    assert {"first_byte", "total"} <= set(result.phases)


async def test_5xx_is_production_down(session: aiohttp.ClientSession, target: Target) -> None:
    """A 503 feeds production_down as bad_status."""
    target.status = 503
    result = await probe(session, f'{{type: http, url: "{target.url}"}}')
    (problem,) = result.problems
    assert (problem.condition, problem.kind) == ("production_down", FailureKind.BAD_STATUS)
    assert problem.summary == f"{target.url} answered 503"


async def test_4xx_is_api_failure(session: aiohttp.ClientSession, target: Target) -> None:
    """A 404 feeds api_failure."""
    target.status = 404
    result = await probe(session, f'{{type: http, url: "{target.url}"}}')
    assert result.problems[0].condition == "api_failure"


async def test_missing_and_forbidden_text_are_assertions(session: aiohttp.ClientSession, target: Target) -> None:
    """body_contains / body_not_contains failures are api_failure assertions naming the text."""
    target.body = "Database error: stack trace"
    result = await probe(
        session,
        f'{{type: http, url: "{target.url}", '
        'expect: {body_contains: "Add to cart", body_not_contains: "stack trace"}}',
    )
    assert [p.kind for p in result.problems] == [FailureKind.ASSERTION, FailureKind.ASSERTION]
    assert "'Add to cart'" in result.problems[0].summary and "'stack trace'" in result.problems[1].summary


async def test_json_field_equality(session: aiohttp.ClientSession, target: Target) -> None:
    """expect.json compares dotted paths in a JSON body."""
    target.body = '{"status": "ok", "db": {"replicas": [{"up": false}]}}'
    result = await probe(
        session, f'{{type: http, url: "{target.url}", expect: {{json: {{status: ok, "db.replicas[0].up": true}}}}}}'
    )
    (problem,) = result.problems
    assert "db.replicas[0].up = False, expected True" in problem.summary


async def test_invalid_json_where_json_expected(session: aiohttp.ClientSession, target: Target) -> None:
    """A non-JSON body where JSON fields are expected is invalid_json, not a crash."""
    target.body = "<html>oops"
    result = await probe(session, f'{{type: http, url: "{target.url}", expect: {{json: {{status: ok}}}}}}')
    assert result.problems[0].kind is FailureKind.INVALID_JSON


async def test_latency_over_budget_is_degraded(session: aiohttp.ClientSession, target: Target) -> None:
    """Slower than max_latency: degraded (SEV-3), the page itself is fine."""
    target.delay = 0.3
    result = await probe(session, f'{{type: http, url: "{target.url}", expect: {{max_latency: 100ms}}}}')
    (problem,) = result.problems
    assert (problem.condition, problem.kind) == ("degraded", FailureKind.SLOW)


async def test_timeout_is_production_down(session: aiohttp.ClientSession, target: Target) -> None:
    """No answer within the timeout: timeout, production_down."""
    target.delay = 5
    result = await probe(session, f'{{type: http, url: "{target.url}"}}', timeout=0.3)
    assert (result.problems[0].condition, result.problems[0].kind) == ("production_down", FailureKind.TIMEOUT)


async def test_refused_port(session: aiohttp.ClientSession) -> None:
    """Nothing listening: refused."""
    result = await probe(session, f'{{type: http, url: "http://127.0.0.1:{free_port()}/"}}')
    assert result.problems[0].kind is FailureKind.REFUSED
    assert result.problems[0].condition == "production_down"


async def test_unresolvable_name_is_dns(session: aiohttp.ClientSession) -> None:
    """A .invalid name never resolves: dns."""
    result = await probe(session, '{type: http, url: "http://shop.acme.invalid/"}')
    assert result.problems[0].kind is FailureKind.DNS


async def test_body_over_cap_is_too_large(session: aiohttp.ClientSession, target: Target) -> None:
    """A body larger than max_body is refused after reading the cap, not buffered whole."""
    target.body = "x" * 5000
    result = await probe(session, f'{{type: http, url: "{target.url}", max_body: 1000}}')
    assert result.problems[0].kind is FailureKind.TOO_LARGE


async def test_redirects_followed_or_refused(session: aiohttp.ClientSession, target: Target) -> None:
    """With follow_redirects false a 302 is judged as is (not in the default 2xx/3xx? it is)."""
    target.status, target.headers = 302, {"Location": "/elsewhere"}
    result = await probe(
        session, f'{{type: http, url: "{target.url}", follow_redirects: false, expect: {{status: 200}}}}'
    )
    assert result.problems[0].summary.endswith("answered 302")


def test_status_spec_forms() -> None:
    """200, [200, 204], '2xx' and '200-299' all parse."""
    assert StatusSpec.parse(["2xx"]).accepts(204)
    assert StatusSpec.parse([200, 301]).accepts(301) and not StatusSpec.parse([200, 301]).accepts(302)
    assert StatusSpec.parse(["500-503"]).accepts(502)


def test_json_path() -> None:
    """Dotted and indexed paths; missing parts are not found."""
    doc = {"a": {"b": [1, {"c": "x"}]}}
    assert json_path(doc, "a.b[1].c") == (True, "x")
    assert json_path(doc, "a.b.1.c") == (True, "x")
    assert json_path(doc, "a.z")[0] is False
