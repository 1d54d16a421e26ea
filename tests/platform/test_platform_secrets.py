"""type: secrets: a page and its same-origin scripts scanned for exposed credentials."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiohttp import web

from monitor.fakes import FakeServer
from monitor.probes import ProbeContext
from monitor.probes.secrets import SecretsCheck, find_leaks, probe_secrets, script_urls
from monitor.redact import fingerprint
from monitor.results import FailureKind, Severity

MakeCtx = Callable[..., ProbeContext]

LIVE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" * 2
TEST = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"
AWS = "AKIAIOSFODNN7EXAMPLE"


def jwt(role: str) -> str:
    def part(doc: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'role': role, 'ref': 'x'})}.c2lnbmF0dXJlc2lnbmF0dXJl"


class Site(FakeServer):
    """A client site: a page and scripts whose content the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, str] = {"/": "<html><body>hello</body></html>"}
        self.app.router.add_get("/{path:.*}", self._serve)

    async def _serve(self, request: web.Request) -> web.Response:
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404, text="not found")
        kind = "text/html" if request.path == "/" else "application/javascript"
        return web.Response(text=body, content_type=kind)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    await s.start()
    yield s
    await s.stop()


def page(*scripts: str, inline: str = "") -> str:
    tags = "".join(f'<script src="{s}"></script>' for s in scripts)
    return f"<html><head>{tags}<script>{inline}</script></head><body>shop</body></html>"


async def test_clean_site_passes(site: Site, make_ctx: MakeCtx) -> None:
    """Publishable keys and anon JWTs are meant to be public: no problem."""
    site.files["/"] = page("/app.js")
    site.files["/app.js"] = (
        f'const pk="pk_live_{"a" * 24}"; const anon="{jwt("anon")}"; const s="sb_publishable_abc123def456";'
    )
    result = await probe_secrets(SecretsCheck(url=site.url), make_ctx())  # type: ignore[arg-type]
    assert result.ok, result.problems
    assert "1 script(s)" in result.detail


async def test_live_key_in_script_is_breach(site: Site, make_ctx: MakeCtx) -> None:
    """A Stripe live secret key in a same-origin script is security_breach, shown only as a fingerprint."""
    site.files["/"] = page("/static/app.js")
    site.files["/static/app.js"] = f'\n\nconst stripe = "{LIVE}";'
    (problem,) = (await probe_secrets(SecretsCheck(url=site.url), make_ctx())).problems  # type: ignore[arg-type]
    assert problem.condition == "security_breach"
    assert fingerprint(LIVE) in problem.evidence[0]
    assert "line 3" in problem.evidence[0]
    assert LIVE not in repr(problem)


@pytest.mark.parametrize(
    "secret",
    [
        jwt("service_role"),
        "sb_secret_abcdefghijklmnop123456",
        "sbp_" + "0123456789abcdef" * 2 + "01234567",
        AWS,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "rk_live_" + "x" * 30,
    ],
)
async def test_each_credential_kind_is_found(site: Site, make_ctx: MakeCtx, secret: str) -> None:
    """Service-role JWTs, sb_secret_, sbp_, AWS key ids, PEM keys and restricted keys are all breaches."""
    site.files["/"] = page(inline=f"var k = `{secret}`;")
    (problem,) = (await probe_secrets(SecretsCheck(url=site.url), make_ctx())).problems  # type: ignore[arg-type]
    assert problem.condition == "security_breach"
    assert secret not in repr(problem)


async def test_test_key_is_sev3_degraded_by_default(site: Site, make_ctx: MakeCtx) -> None:
    """A Stripe test key is degraded SEV-3 (test_keys: warn), a breach with test_keys: breach."""
    site.files["/"] = page(inline=f'var k="{TEST}";')
    (problem,) = (await probe_secrets(SecretsCheck(url=site.url), make_ctx())).problems  # type: ignore[arg-type]
    assert (problem.condition, problem.severity) == ("degraded", Severity.SEV3)
    strict = SecretsCheck(url=site.url, test_keys="breach")  # type: ignore[arg-type]
    assert [p.condition for p in (await probe_secrets(strict, make_ctx())).problems] == ["security_breach"]
    quiet = SecretsCheck(url=site.url, test_keys="ignore")  # type: ignore[arg-type]
    assert (await probe_secrets(quiet, make_ctx())).ok


async def test_cross_origin_scripts_are_not_fetched(site: Site, make_ctx: MakeCtx) -> None:
    """Only same-origin scripts are fetched, at most max_scripts."""
    site.files["/"] = page("https://cdn.example/lib.js", "/a.js", "/b.js", "/c.js")
    for name in ("/a.js", "/b.js", "/c.js"):
        site.files[name] = "ok"
    site.files["/c.js"] = f'"{AWS}"'
    result = await probe_secrets(SecretsCheck(url=site.url, max_scripts=2), make_ctx())  # type: ignore[arg-type]
    assert result.ok
    assert not any("cdn.example" in r for r in site.requests)


async def test_oversized_script_is_skipped_and_noted(site: Site, make_ctx: MakeCtx) -> None:
    """A script over max_script_bytes is not read; detail says so."""
    site.files["/"] = page("/big.js")
    site.files["/big.js"] = "x" * 5000 + AWS
    result = await probe_secrets(SecretsCheck(url=site.url, max_script_bytes=1024), make_ctx())  # type: ignore[arg-type]
    assert result.ok
    assert "could not read 1" in result.detail


async def test_page_unreachable_is_api_failure_sev3(dead_url: str, make_ctx: MakeCtx) -> None:
    """A page that cannot be fetched is api_failure SEV-3 (the http check owns site down)."""
    (problem,) = (await probe_secrets(SecretsCheck(url=dead_url), make_ctx())).problems  # type: ignore[arg-type]
    assert (problem.condition, problem.kind, problem.severity) == ("api_failure", FailureKind.REFUSED, Severity.SEV3)


async def test_page_5xx_is_api_failure(site: Site, make_ctx: MakeCtx) -> None:
    """A page answering 503 cannot be scanned: api_failure SEV-3."""
    site.fail(503)
    (problem,) = (await probe_secrets(SecretsCheck(url=site.url), make_ctx())).problems  # type: ignore[arg-type]
    assert (problem.condition, problem.severity) == ("api_failure", Severity.SEV3)


def test_script_urls_resolve_relative_and_dedupe() -> None:
    """Relative, protocol-relative and duplicate script URLs resolve to one same-origin list."""
    html = '<script src="a.js"></script><script src="/a.js"></script><script src="//other.example/x.js"></script>'
    assert script_urls(html, "https://shop.example/", 10) == ["https://shop.example/a.js"]


def test_anon_jwt_is_not_a_leak() -> None:
    """find_leaks ignores anon JWTs and finds service_role ones."""
    assert find_leaks(jwt("anon"), "x") == []
    assert [leak.what for leak in find_leaks(jwt("service_role"), "x")] == ["Supabase service-role JWT"]
