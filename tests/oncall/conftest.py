"""On-call test kit: one real aiohttp.web stand-in on 127.0.0.1 for Slack, PagerDuty,
Alertmanager and a webhook receiver, scripted per endpoint; configs wired to it;
engines on a FakeClock and a SQLite file; and the secrets every test must never leak."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from monitor.config import Config
from monitor.engine import Engine
from monitor.results import FailureKind, ProbeResult, Problem
from monitor.store import OutboxItem

SECRETS = {
    "HOOK_SECRET": "whsec_hook_signing_secret_0123456789",
    "HOOK_TOKEN": "querytoken_in_the_hook_url_abcdef",
    "SLACK_SECRET": "slackPathSecretXYZ0123456789abcd",
    "PD_KEY": "R0UTINGKEYpagerduty0123456789abcd",
    "AM_PASSWORD": "am_basic_auth_password_987654321",
}

KINDS = ("hook", "slack", "pd", "am")


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"status": "success"}'
    delay: float = 0.0  # seconds before answering (a hanging receiver)


@dataclass
class Seen:
    kind: str
    status: int
    headers: dict[str, str]
    raw: bytes
    path_qs: str

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Receiver:
    """Speaks just enough of each wire format; `script[kind]` replies are used first, then 2xx."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: dict[str, list[Reply]] = defaultdict(list)
        self.echo_4xx = False  # answer 400 with the request echoed back (what a careless API does)
        self.port = 0
        self.runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, kind: str, *replies: Reply) -> None:
        self.script[kind].extend(replies)

    def accepted(self, kind: str) -> list[Any]:
        """Bodies of the requests of `kind` that were answered 2xx, in arrival order."""
        return [s.json for s in self.seen if s.kind == kind and 200 <= s.status < 300]

    def attempts(self, kind: str) -> list[Seen]:
        return [s for s in self.seen if s.kind == kind]

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        kind = next((k for k in KINDS if path.startswith(f"/{k}")), "other")
        raw = await request.read()
        reply = (
            self.script[kind].pop(0) if self.script[kind] else Reply(200 if kind in ("hook", "slack", "am") else 202)
        )
        body = reply.body
        if self.echo_4xx and reply.status >= 400:
            body = f"invalid request {request.path_qs} {request.headers.get('Authorization', '')} {raw.decode()}"
        self.seen.append(Seen(kind, reply.status, dict(request.headers), raw, request.path_qs))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, text=body, headers=reply.headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Go down: connections to the port are refused until `start()` again."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


PEOPLE_AND_CHANNELS = """
version: 1
monitor: {{public_url: "https://status.example"}}
defaults: {{interval: 10s, timeout: 5s, failure_threshold: 1, success_threshold: 1}}
notifications: {{group_window: 30s, group_threshold: {threshold}, retry_initial: 1s, retry_max: 60s, drain_timeout: 2s}}
people:
  owen: {{name: Owen, title: The Hornet, notify: [hook, slack]}}
  derek: {{name: Derek, notify: [pager]}}
  marcus: {{name: Marcus, notify: [hook]}}
  jonny: {{name: Jonny, notify: [pager, am]}}
  felix: {{name: Felix, notify: [hook]}}
channels:
  hook: {{type: webhook, url: "{base}/hook/in?token=${{HOOK_TOKEN}}", secret: "${{HOOK_SECRET}}"}}
  slack: {{type: slack, url: "{base}/slack/services/T000/B000/${{SLACK_SECRET}}"}}
  pager: {{type: pagerduty, routing_key: "${{PD_KEY}}", events_url: "{base}/pd"}}
  am: {{type: alertmanager, url: "http://monitor:${{AM_PASSWORD}}@127.0.0.1:{port}/am", resend_interval: 1m}}
conditions:
  production_down: {{first_responders: [owen, derek], escalation: [marcus, jonny]}}
  financial_error: {{first_responders: [felix], escalation: [marcus, jonny], escalate_immediately: true}}
  api_failure: {{first_responders: [owen], escalation: [marcus], escalate_after: 10m, remind_every: 1h}}
  degraded: {{severity: SEV-4, first_responders: [owen], escalation: [marcus]}}
sites:
{sites}
"""

SITES = ("acme-shop", "globex", "initech", "umbrella", "hooli", "vandelay")


def site_yaml(names: tuple[str, ...] = SITES) -> str:
    return "\n".join(
        f"  - name: {n}\n    client: {n}\n    checks:\n      - {{type: http, url: 'http://{n}.example/'}}"
        for n in names
    )


@pytest.fixture
def oncall_config(config_from: Callable[..., Config], receiver: Receiver) -> Callable[..., Config]:
    """The on-call config wired to the stand-in (maintenance and extra YAML can be appended)."""

    def make(threshold: int = 3, extra: str = "", sites: tuple[str, ...] = SITES) -> Config:
        text = PEOPLE_AND_CHANNELS.format(
            base=receiver.base, port=receiver.port, threshold=threshold, sites=site_yaml(sites)
        )
        return config_from(text + extra, env=SECRETS)

    return make


def down(condition: str = "production_down", summary: str = "answered 503") -> ProbeResult:
    return ProbeResult(
        duration=0.01,
        status_code=503,
        problems=(Problem(condition=condition, kind=FailureKind.BAD_STATUS, summary=summary),),
    )


UP = ProbeResult(duration=0.01, status_code=200)


async def fail_site(engine: Engine, site: str, condition: str = "production_down") -> str:
    """One failing probe of `site` (threshold 1): returns the id of its open incident."""
    check = next(c for c in engine.config.checks if c.site == site)
    await engine.handle_result(check, down(condition))
    incident = next(i for i in engine.open.values() if i.site == site and i.condition == condition)
    return incident.id


async def recover_site(engine: Engine, site: str) -> None:
    check = next(c for c in engine.config.checks if c.site == site)
    await engine.handle_result(check, UP)


async def flush(engine: Engine) -> None:
    """Let the worker finish what is due now (a pass under its lock, then one more)."""
    assert engine.outbox is not None
    for _ in range(2):
        await engine.outbox.deliver_due()
    await asyncio.sleep(0)


async def rows(engine: Engine) -> list[OutboxItem]:
    return await engine.store.list_outbox()


@pytest.fixture
def start_engine(engine_for: Callable[..., Any]) -> Callable[..., Any]:
    """Engines (no scheduler) on a FakeClock and <tmp_path>/<db> (tests/conftest.py); `abandon` simulates kill -9."""
    return engine_for


async def abandon(engine: Engine) -> None:
    """kill -9: every task of the engine stops where it is; nothing is flushed or marked."""
    for task in engine.background:
        task.cancel()
    await asyncio.gather(*engine.background, return_exceptions=True)
    engine.background.clear()
    engine.ready = False
    if engine.session is not None:
        await engine.session.close()
    await engine.store.close()  # the OS would close the file; SQLite committed rows stay
