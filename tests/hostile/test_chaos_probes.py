"""Every hostile target yields the right classified failure, within its timeout, through the real probes."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from monitor.clock import SystemClock
from monitor.config import parse_config
from monitor.engine import Engine
from monitor.results import FailureKind
from monitor.store.sqlite import SqliteStore

from ..conftest import free_port
from .chaos import (
    UNRESOLVABLE,
    ChaosServer,
    garbage_server,
    self_signed_context,
    tls_server,
    trustme_context,
)
from .conftest import RunCheck

SLACK = 10.0  # seconds on top of a timeout before we call it "not within": a loaded CI box is slow

DOWN, API = "production_down", "api_failure"


@pytest.mark.parametrize(
    ("path", "seconds", "kind", "condition"),
    [
        ("/hang", 1.0, FailureKind.TIMEOUT, DOWN),
        ("/trickle", 1.5, FailureKind.TIMEOUT, DOWN),
        ("/reset", 2.0, FailureKind.RESET, DOWN),
        ("/huge", 5.0, FailureKind.TOO_LARGE, API),
        ("/huge-chunked", 5.0, FailureKind.TOO_LARGE, API),
        ("/gzip-bomb", 5.0, FailureKind.TOO_LARGE, API),
        ("/loop", 5.0, FailureKind.REDIRECT, DOWN),
    ],
)
async def test_misbehaving_http_target_is_classified(
    chaos: ChaosServer, run_check: RunCheck, path: str, seconds: float, kind: FailureKind, condition: str
) -> None:
    """Hang, trickle, reset, 1 GB, gzip bomb, redirect loop: one classified problem each, in time."""
    start = time.monotonic()
    result = await run_check(f'{{type: http, url: "{chaos.url(path)}"}}', limit=f"{seconds}s")
    elapsed = time.monotonic() - start
    (problem,) = result.problems
    assert (problem.kind, problem.condition) == (kind, condition), problem.summary
    assert problem.summary.startswith(chaos.url(path))
    assert elapsed < seconds + SLACK


async def test_invalid_json_where_json_is_expected(chaos: ChaosServer, run_check: RunCheck) -> None:
    """A 200 whose body is not JSON, with `expect.json`: api_failure, kind invalid_json."""
    result = await run_check(f'{{type: http, url: "{chaos.url("/bad-json")}", expect: {{json: {{status: ok}}}}}}')
    (problem,) = result.problems
    assert (problem.kind, problem.condition) == (FailureKind.INVALID_JSON, API)
    assert "not JSON" in problem.summary


async def test_refused_port(run_check: RunCheck) -> None:
    """Nothing listens: production_down, kind refused."""
    result = await run_check(f'{{type: http, url: "http://127.0.0.1:{free_port()}/"}}')
    (problem,) = result.problems
    assert (problem.kind, problem.condition) == (FailureKind.REFUSED, DOWN)


async def test_unresolvable_name(run_check: RunCheck) -> None:
    """A `.invalid` name never resolves: production_down, kind dns (never a real domain)."""
    start = time.monotonic()
    result = await run_check(f'{{type: http, url: "{UNRESOLVABLE}"}}', limit="3s")
    (problem,) = result.problems
    assert (problem.kind, problem.condition) == (FailureKind.DNS, DOWN)
    assert time.monotonic() - start < 3 + SLACK


async def test_malformed_http_answer(run_check: RunCheck) -> None:
    """A server answering bytes that are not HTTP: production_down, kind protocol."""
    async with garbage_server() as url:
        result = await run_check(f'{{type: http, url: "{url}"}}')
    (problem,) = result.problems
    assert (problem.kind, problem.condition) == (FailureKind.PROTOCOL, DOWN), problem.summary
    assert "malformed" in problem.summary


async def test_half_an_answer_then_close(run_check: RunCheck) -> None:
    """A status line then a hang-up before the headers end: classified, not a crash."""
    async with garbage_server(b"HTTP/1.1 200 OK\r\nContent-Le") as url:
        result = await run_check(f'{{type: http, url: "{url}"}}')
    (problem,) = result.problems
    assert problem.kind in {FailureKind.PROTOCOL, FailureKind.RESET}
    assert problem.condition == DOWN


@pytest.mark.parametrize(
    ("reply", "kind", "words"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip!!!!",
            FailureKind.PROTOCOL,
            "content-encoding",
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: ftp://files.invalid/\r\nContent-Length: 0\r\n\r\n",
            FailureKind.REDIRECT,
            "not an http(s) url",
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: http://[::1/\r\nContent-Length: 0\r\n\r\n",
            FailureKind.REDIRECT,
            "not an http(s) url",
        ),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"s3cr3t" * 20000 + b"\r\n\r\n", FailureKind.PROTOCOL, "malformed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", FailureKind.RESET, "cut the response body short"),
    ],
    ids=["bad-gzip", "redirect-ftp", "redirect-garbage", "huge-header", "short-body"],
)
async def test_broken_framing_is_classified(run_check: RunCheck, reply: bytes, kind: FailureKind, words: str) -> None:
    """Bodies that fail their encoding, redirects nowhere, oversized headers, short bodies: one line each."""
    async with garbage_server(reply) as url:
        result = await run_check(f'{{type: http, url: "{url}"}}')
    (problem,) = result.problems
    assert problem.kind is kind, problem.summary
    assert words in problem.summary.lower(), problem.summary
    assert "\n" not in problem.summary
    assert "s3cr3t" not in problem.summary
    assert len(problem.summary) < 300


# -- certificates ------------------------------------------------------------------------


def _certs(ca: trustme.CA, tmp_path: Path) -> dict[str, Callable[[], object]]:
    return {
        "untrusted": lambda: trustme_context(trustme.CA()),
        "self_signed": lambda: self_signed_context(tmp_path),
        "expired": lambda: trustme_context(ca, days=-2),
        "wrong_host": lambda: trustme_context(ca, host="other.example"),
    }


@pytest.mark.parametrize("which", ["untrusted", "self_signed", "expired", "wrong_host"])
async def test_bad_certificate_via_http_probe(run_check: RunCheck, ca: trustme.CA, tmp_path: Path, which: str) -> None:
    """Any certificate a browser refuses: the http probe says production_down, kind tls."""
    async with tls_server(_certs(ca, tmp_path)[which]()) as url:  # type: ignore[arg-type]
        result = await run_check(f'{{type: http, url: "{url}"}}')
    (problem,) = result.problems
    assert (problem.kind, problem.condition) == (FailureKind.TLS, DOWN), problem.summary


@pytest.mark.parametrize(
    ("which", "words"),
    [
        ("untrusted", "verification"),
        ("self_signed", "self-signed"),
        ("expired", "expired"),
        ("wrong_host", "mismatch"),
    ],
)
async def test_bad_certificate_via_tls_probe(
    run_check: RunCheck, ca: trustme.CA, tmp_path: Path, which: str, words: str
) -> None:
    """The tls probe (trusting our test CA) names what is wrong with the certificate."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with tls_server(_certs(ca, tmp_path)[which]()) as url:  # type: ignore[arg-type]
        result = await run_check(f'{{type: tls, url: "{url}", ca_file: "{ca_file}"}}')
    (problem,) = result.problems
    assert (problem.kind, problem.condition) == (FailureKind.TLS, DOWN), problem.summary
    assert words in problem.summary.lower()


async def test_tls_probe_against_hang_and_refused(chaos: ChaosServer, run_check: RunCheck) -> None:
    """A TLS handshake with a server that never answers times out; a closed port is refused."""
    host = chaos.base.removeprefix("http://")
    hung = await run_check(f'{{type: tls, url: "https://{host}/"}}', limit="1s")
    assert hung.problems[0].kind in {FailureKind.TIMEOUT, FailureKind.TLS}
    refused = await run_check(f'{{type: tls, url: "https://127.0.0.1:{free_port()}/"}}')
    assert refused.problems[0].kind is FailureKind.REFUSED


# -- memory --------------------------------------------------------------------------------


async def test_memory_stays_bounded_under_huge_and_bomb_bodies(chaos: ChaosServer, run_check: RunCheck) -> None:
    """1 GB offered (declared and chunked) and a 256 MB gzip bomb: peak allocation stays under 50 MB."""
    await run_check(f'{{type: http, url: "{chaos.url("/gzip-bomb")}"}}')  # warm up: the bomb is built once
    tracemalloc.start()
    try:
        for path in ("/huge", "/huge-chunked", "/gzip-bomb", "/huge-chunked", "/gzip-bomb"):
            result = await run_check(f'{{type: http, url: "{chaos.url(path)}"}}', limit="10s")
            assert result.problems[0].kind is FailureKind.TOO_LARGE
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert chaos.bytes_sent.get("/huge-chunked", 0) < 512 << 20  # the prober hung up long before 1 GB


# -- isolation: a slow target does not delay a fast check ---------------------------------


async def test_slow_targets_do_not_delay_a_fast_check(chaos: ChaosServer, tmp_path: Path) -> None:
    """Hanging, trickling and huge targets probed alongside a fast check: the fast one keeps its schedule."""
    slow = "\n".join(
        f'      - {{type: http, name: {name}, url: "{chaos.url(path)}", interval: 1s, timeout: 900ms}}'
        for name, path in [("hang", "/hang"), ("trickle", "/trickle"), ("huge", "/huge-chunked"), ("bomb", "/loop")]
    )
    text = (
        "version: 1\nmonitor: {max_concurrency: 8}\n"
        "sites:\n  - name: slow\n    checks:\n" + slow + "\n"
        "  - name: fast\n    checks:\n"
        f'      - {{type: http, url: "{chaos.url("/ok")}", interval: 200ms, timeout: 150ms}}\n'
    )
    config = parse_config(text, str(tmp_path / "sites.yaml"), {})
    engine = Engine(config, SqliteStore("sqlite:///monitor.db", base_dir=str(tmp_path)), clock=SystemClock())
    await engine.start()
    try:
        await asyncio.sleep(4.0)  # 20 fast slots; the slow ones hang in 4 of the 8 concurrency slots
        counts = dict(engine.telemetry.probes)
    finally:
        await engine.stop()
    fast_ok = counts.get(("fast", "http", "ok"), 0)
    assert fast_ok >= 6, counts  # generous: 20 are due, a loaded box still runs a third of them
    assert sum(n for (site, _, _), n in counts.items() if site == "slow") >= 4
    assert all(result != "ok" for (site, _, result) in counts if site == "slow")
