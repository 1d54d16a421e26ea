"""Secret hygiene: seed every kind of secret, run the real CLI and engine, grep every output for them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from monitor.redact import fingerprint

from ..conftest import free_port
from .chaos import start_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECRETS = {
    "RESPONDER_TOKEN": "resp-tok-7f3a9c2e1b0d",
    "OWNER_TOKEN": "owner-tok-5d8e2a1f9c7b",
    "HOOK_SECRET": "whsec_hostileHook0a1b2c3d4e",
    "HOOK_TOKEN": "hooktoken9q8w7e6r5t",
    "STRIPE_KEY": "sk_live_hostile51Habcdef0123456789",
    "SUPA_ANON": "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.hostileAnonSig0123",
    "SUPA_SERVICE": "sb_secret_hostileService0123456789",
    "HEADER_TOKEN": "hdr-secret-1a2b3c4d5e6f",
    "QUERY_TOKEN": "qtok-9z8y7x6w5v4u",
    "USERINFO_PW": "pwUserinfo4u3i2o1p",
}
LEAKED = "sk_live_LEAKEDkey0123456789abcdefXYZ"  # served by the target, found by the secrets probe
LEAKED_AWS = "AKIAHOSTILE7EXAMPLE1"

CONFIG = """
version: 1
monitor:
  listen: 127.0.0.1:{port}
  store: sqlite:///./monitor.db
  tokens: {{responder: "${{RESPONDER_TOKEN}}", owner: "${{OWNER_TOKEN}}"}}
defaults: {{interval: 500ms, timeout: 400ms, failure_threshold: 2, success_threshold: 2}}
people:
  owen: {{name: Owen, notify: [hook]}}
  victor: {{name: Victor, notify: [hook]}}
channels:
  hook: {{type: webhook, url: "{hook}/hook?token=${{HOOK_TOKEN}}", secret: "${{HOOK_SECRET}}"}}
conditions:
  production_down: {{first_responders: [owen]}}
  security_breach: {{first_responders: [victor]}}
  api_failure: {{first_responders: [owen]}}
sites:
  - name: shop
    client: acme
    checks:
      - type: http
        url: "http://127.0.0.1:{dead}/?token=${{QUERY_TOKEN}}"
        headers: {{Authorization: "Bearer ${{HEADER_TOKEN}}"}}
      - type: http
        name: login
        url: "http://user:${{USERINFO_PW}}@127.0.0.1:{dead}/login?token=${{QUERY_TOKEN}}"
      - type: secrets
        url: "{target}/"
      - type: stripe
        api_key: "${{STRIPE_KEY}}"
        api_base: "http://127.0.0.1:{dead}"
      - type: supabase
        url: "{target}/supabase"
        anon_key: "${{SUPA_ANON}}"
        service_key: "${{SUPA_SERVICE}}"
"""


class Receiver:
    """The target site (leaking a key) and the webhook stand-in, on one local server."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def page(self, _: web.Request) -> web.Response:
        html = f'<html><script>const stripe = "{LEAKED}"; const aws = "{LEAKED_AWS}";</script>Add to cart</html>'
        return web.Response(text=html, content_type="text/html")

    async def hook(self, request: web.Request) -> web.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host")
        self.received.append(headers.encode() + b"\n\n" + await request.read())
        return web.json_response({"ok": True})

    async def anything(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "no such thing", "echo": dict(request.headers)}, status=500)


def get(url: str, token: str | None = None, body: bytes | None = None) -> bytes:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return bytes(exc.read())


async def cli(folder: Path, env: dict[str, str], *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args, "-c", str(folder / "sites.yaml"),
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return out


async def test_no_secret_reaches_any_output(tmp_path: Path) -> None:
    """Tokens, channel secrets, Stripe/Supabase keys, header/query/userinfo credentials and a served leaked
    key never appear in full in logs, /metrics, the API, reports, chatroom.md, webhooks or CLI output."""
    recv = Receiver()
    app = web.Application()
    app.router.add_get("/", recv.page)
    app.router.add_post("/hook", recv.hook)
    app.router.add_route("*", "/{tail:.*}", recv.anything)
    runner, tport = await start_app(app)
    base = f"http://127.0.0.1:{tport}"
    port = free_port()
    (tmp_path / "sites.yaml").write_text(CONFIG.format(port=port, hook=base, target=base, dead=free_port()))
    env = {**os.environ, **SECRETS, "MONITOR_LOG_FORMAT": "json", "MONITOR_LOG_LEVEL": "DEBUG"}
    outputs: dict[str, bytes] = {}
    try:
        outputs["monitor check"] = await cli(tmp_path, env, "check")
        outputs["monitor probe"] = await cli(tmp_path, env, "probe")
        outputs["monitor probe --json"] = await cli(tmp_path, env, "probe", "--json")
        log = (tmp_path / "run.log").open("wb")
        proc = subprocess.Popen(  # noqa: ASYNC220 - a long-running child we signal, not wait on
            [sys.executable, "-m", "monitor", "run", "-c", str(tmp_path / "sites.yaml")],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        api = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):  # until the leak and the outage are incidents and a webhook has arrived
                await asyncio.sleep(0.5)
                try:
                    doc = await asyncio.to_thread(get, f"{api}/api/v1/incidents?status=open")
                except OSError:
                    continue
                if b"security_breach" in doc and b"production_down" in doc and recv.received:
                    break
            else:
                pytest.fail("incidents did not open: " + (tmp_path / "run.log").read_text()[-3000:])
            import orjson

            incidents = orjson.loads(doc)["incidents"]
            for i in incidents:
                iid = i["id"]
                outputs[f"ack {iid}"] = await asyncio.to_thread(
                    get, f"{api}/api/v1/incidents/{iid}/ack", SECRETS["RESPONDER_TOKEN"], b'{"by": "owen"}'
                )
            outputs["wrong token"] = await asyncio.to_thread(
                get, f"{api}/api/v1/override", SECRETS["RESPONDER_TOKEN"][:-1], b"{}"
            )
            await asyncio.sleep(1.5)  # let acknowledgements be delivered too
            for path in ["/", "/metrics", "/api/v1/status", "/api/v1/incidents", "/api/v1/halt", "/api/v1/maintenance"]:
                outputs[path] = await asyncio.to_thread(get, api + path)
            for i in incidents:
                outputs[i["id"]] = await asyncio.to_thread(get, f"{api}/api/v1/incidents/{i['id']}")
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
            log.close()
    finally:
        await runner.cleanup()
    outputs["run log"] = (tmp_path / "run.log").read_bytes()
    for f in tmp_path.rglob("*"):  # noqa: ASYNC240 - the engine has exited
        if f.is_file() and f.suffix in (".md", "") and f.name != "sites.yaml":
            outputs[str(f.relative_to(tmp_path))] = f.read_bytes()
    for n, raw in enumerate(recv.received):
        outputs[f"webhook {n}"] = raw

    assert "chatroom.md" in outputs
    assert any(k.startswith(".tmp/incidents/") for k in outputs)
    assert b'"level"' in outputs["run log"]  # JSON logs were on
    leaks = [
        (name, where)
        for name, value in [*SECRETS.items(), ("LEAKED", LEAKED), ("LEAKED_AWS", LEAKED_AWS)]
        for where, raw in outputs.items()
        if value.encode() in raw
    ]
    assert leaks == [], leaks
    shown = fingerprint(LEAKED).encode()  # the leaked key is named by prefix and short hash instead
    assert any(shown in raw for raw in outputs.values())
