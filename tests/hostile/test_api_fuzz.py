"""Fuzzing: any config text is a Config or a ConfigError; any API body is a JSON 4xx or a success, never
a 500; the OpenAPI document matches the live API (schemathesis); oversized bodies and headers are refused."""

from __future__ import annotations

import socket
import string
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.api import MAX_BODY
from monitor.config import Config, parse_config
from monitor.errors import ConfigError

from .conftest import OWNER, RESPONDER, LiveApi

ROOT = Path(__file__).resolve().parents[2]

# -- the config loader -----------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["10s", "250ms", "2h", "SEV-1", "http://127.0.0.1:1/", "${NOPE}", "${X:-1s}", "http", "tls"]),
)
keys = st.one_of(
    st.sampled_from(
        [
            "version",
            "monitor",
            "defaults",
            "sites",
            "people",
            "channels",
            "conditions",
            "checks",
            "type",
            "url",
            "name",
            "interval",
            "timeout",
            "expect",
            "status",
            "tokens",
            "canaries",
            "maintenance",
            "notify",
        ]
    ),
    st.text(max_size=8),
)
yaml_docs = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25
)
config_texts = st.one_of(
    st.text(max_size=400),
    st.text(alphabet=string.printable, max_size=400),
    yaml_docs.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    yaml_docs.map(lambda d: yaml.safe_dump({"version": 1, "sites": [{"name": "s", "checks": [d]}]})),
    yaml_docs.map(lambda d: yaml.safe_dump({"version": 1, "monitor": d, "sites": []})),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=config_texts, env=st.dictionaries(st.sampled_from(["X", "NOPE", "TOKEN"]), st.text(max_size=10)))
def test_any_text_is_a_config_or_a_config_error(text: str, env: dict[str, str]) -> None:
    """parse_config never raises anything but ConfigError, and every issue is located."""
    try:
        config = parse_config(text, "fuzz.yaml", env)
    except ConfigError as exc:
        issues = exc.issues
    else:
        assert isinstance(config, Config)
        return
    assert issues
    for issue in issues:
        assert issue.file == "fuzz.yaml"
        assert issue.line >= 1
        assert issue.column >= 1


# -- API bodies --------------------------------------------------------------------------------


def request(
    api: LiveApi, method: str, path: str, body: bytes | None = None, token: str | None = None, **headers: str
) -> tuple[int, str, bytes]:
    req = urllib.request.Request(api.base + path, data=body, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in headers.items():
        req.add_header(name.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_values = {
    "by": st.sampled_from(["owen", "@owen", " derek ", "nobody", "", "OWEN", "a" * 70]) | json_values,
    "note": st.text(max_size=50) | st.just("n" * 4001) | json_values,
    "action": st.sampled_from(["lift_halt", "cancel", "LIFT"]) | json_values,
    "reason": st.sampled_from(["deploy the fix", " ", ""]) | json_values,
    "until": st.sampled_from(["2h", "1m", "8d", "0s", "-1h", "2030-01-01T00:00:00Z", "2001-01-01T00:00:00Z", "soon"])
    | json_values,
    "duration": st.sampled_from(["2h", "0s", "9d", 60, -5, True, "forever"]) | json_values,
}
shaped = st.fixed_dictionaries({}, optional=field_values) | st.dictionaries(st.text(max_size=8), json_values)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(orjson.dumps),
    shaped.map(orjson.dumps),
    st.just(b'{"by": "owen"'),
    st.just(b"\xff\xfe{}"),
)


def routes(api: LiveApi) -> list[tuple[str, str]]:
    first = api.incidents[0]
    return [
        ("POST", f"/api/v1/incidents/{first}/ack"),
        ("POST", f"/api/v1/incidents/{first}/resolve"),
        ("POST", f"/api/v1/incidents/{first}/notes"),
        ("POST", "/api/v1/incidents/INCIDENT-19990101-SEV1-001/ack"),
        ("POST", "/api/v1/override"),
        ("POST", "/api/v1/sites/blog/silence"),
        ("POST", "/api/v1/sites/*/silence"),
        ("DELETE", "/api/v1/sites/blog/silence"),
        ("POST", "/webhooks/stripe"),
    ]


def test_every_api_body_gets_json_4xx_or_success(live_api: LiveApi) -> None:
    """Arbitrary bytes, JSON and near-valid bodies on every POST route: never a 500, always JSON."""
    seen: set[int] = set()

    ack, _, notes = routes(live_api)[:3]

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @example(route=ack, body=b'{"by": "owen"}', token=RESPONDER, content_type="application/json")
    @example(route=notes, body=b'{"by": "derek", "note": "n"}', token=OWNER, content_type="text/plain")
    @given(
        route=st.sampled_from(routes(live_api)),
        body=bodies,
        token=st.sampled_from([RESPONDER, OWNER, None, "wrong-token", ""]),
        content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
    )
    def one(route: tuple[str, str], body: bytes, token: str | None, content_type: str) -> None:
        method, path = route
        status, ctype, raw = request(live_api, method, path, body, token, Content_Type=content_type)
        seen.add(status)
        assert status < 500, (route, body, raw)
        assert ctype.startswith("application/json"), (route, status, ctype)
        doc = orjson.loads(raw)
        if status >= 400:
            assert "error" in doc

    one()
    assert {200, 400, 401} <= seen
    assert request(live_api, "GET", "/healthz")[0] == 200  # the engine still answers
    assert request(live_api, "GET", "/api/v1/status")[0] == 200
    assert live_api.thread.is_alive()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(iid=st.text(min_size=1, max_size=40), query=st.text(max_size=20))
def test_arbitrary_ids_and_queries(live_api: LiveApi, iid: str, query: str) -> None:
    """Any incident id or query string: 404/400 JSON or 200, never a 500."""
    quoted = urllib.parse.quote(iid, safe="")
    for path in (f"/api/v1/incidents/{quoted}", f"/api/v1/incidents?status={urllib.parse.quote(query)}&limit={quoted}"):
        status, ctype, _ = request(live_api, "GET", path)
        assert status in (200, 400, 404), (path, status)
        assert ctype.startswith("application/json")


# -- limits --------------------------------------------------------------------------------------


def test_oversized_body_is_413_json(live_api: LiveApi) -> None:
    """A body over 64 KiB is refused with a JSON 413, and the engine goes on answering."""
    big = orjson.dumps({"by": "owen", "note": "x" * (MAX_BODY + 10)})
    status, ctype, raw = request(live_api, "POST", f"/api/v1/incidents/{live_api.incidents[0]}/notes", big, RESPONDER)
    assert status == 413
    assert ctype.startswith("application/json")
    assert "larger than" in orjson.loads(raw)["error"]
    assert request(live_api, "GET", "/healthz")[0] == 200


def raw_request(api: LiveApi, data: bytes) -> bytes:
    host, port = api.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        chunks = []
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except ConnectionResetError:
            pass  # the server may answer and close while our bytes are unread: what it sent still counts
    return b"".join(chunks)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
        b"GET /" + b"p" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v1/override HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}",
        b"GARBAGE\r\n\r\n",
    ],
    ids=["huge-header", "many-headers", "huge-url", "lying-length", "not-http"],
)
def test_hostile_request_heads_get_4xx_not_a_crash(live_api: LiveApi, head: bytes) -> None:
    """Header, URL and framing abuse: a 4xx status line, and the API keeps answering."""
    answer = raw_request(live_api, head)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
    assert 400 <= status < 500, answer[:200]
    assert request(live_api, "GET", "/healthz")[0] == 200


# -- the OpenAPI document, checked against the live app --------------------------------------------

SCHEMA = schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.yaml"))


def test_openapi_covers_every_route() -> None:
    """docs/openapi.yaml lists exactly the routes the app registers."""
    from monitor.api import create_app

    class _Engine:  # just enough for create_app to register routes
        config = parse_config("version: 1\n", "x.yaml", {})

    app = create_app(_Engine())  # type: ignore[arg-type]
    routes_in_app = {
        (r.method.lower(), r.resource.canonical)  # type: ignore[union-attr]
        for r in app.router.routes()
        if r.method != "HEAD"
    }
    doc = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    routes_in_doc = {(m, p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    assert routes_in_app == routes_in_doc


@SCHEMA.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_live_api_conforms_to_openapi(case: Any, live_api: LiveApi) -> None:
    """Schemathesis: generated requests to every operation; no 5xx, documented statuses and shapes."""
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    token = OWNER if case.path == "/api/v1/override" else RESPONDER
    case.call_and_validate(
        base_url=live_api.base,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
