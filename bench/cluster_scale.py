"""Probes per second with 1, 2 and 3 `monitor run` replicas on one PostgreSQL, all on loopback.

    python -m bench.cluster_scale                       # 1, 2, 3 replicas; throwaway PostgreSQL
    python -m bench.cluster_scale --replicas 1 3 --checks 4000 --seconds 30
    MONITOR_TEST_POSTGRES_URL=postgresql://… python -m bench.cluster_scale

For each replica count: a fresh database, one config with `--checks` http checks at `--interval`
against a local aiohttp target (200, tiny body), N replicas started as `python -m monitor run`,
a warm-up, then the sum of `monitor_probes_total` over every replica's /metrics read twice,
`--seconds` apart. The demand (checks / interval) is set above what one replica sustains, so
the number measured is capacity, not the offered load. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "store"))

from pgserver import ENV, Throwaway, create_database, find_bindir, free_port  # noqa: E402


def config_text(checks: int, interval: str) -> str:
    lines = [
        "version: 1",
        'monitor: {store: "${MONITOR_STORE}", workspace: ws, max_concurrency: 500}',
        f"defaults: {{interval: {interval}, timeout: 500ms}}",
        "sites:",
    ]
    per_site = 100
    for s in range(0, checks, per_site):
        lines.append(f"  - name: site-{s // per_site}")
        lines.append("    checks:")
        for i in range(s, min(s + per_site, checks)):
            lines.append(f'      - {{type: http, name: c{i}, url: "${{TARGETS}}/t/{i}"}}')
    return "\n".join(lines) + "\n"


async def start_targets() -> tuple[web.AppRunner, str]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/t/{n}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


async def probes_total(http: aiohttp.ClientSession, ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith("monitor_probes_total{"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


async def measure(server: str, targets: str, n: int, args: argparse.Namespace, work: Path) -> float:
    db = await create_database(server)
    path = work / f"sites-{n}.yaml"
    path.write_text(config_text(args.checks, args.interval))
    env = {**os.environ, "MONITOR_STORE": db, "TARGETS": targets, "MONITOR_LOG_LEVEL": "WARNING"}
    env.pop("MONITOR_CONFIG", None)
    env.pop("MONITOR_LISTEN", None)
    ports = [free_port() for _ in range(n)]
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - started once per measurement
            [sys.executable, "-m", "monitor", "run", "-c", str(path), "--listen", f"127.0.0.1:{port}"],
            env={**env, "MONITOR_REPLICA_ID": f"bench-{i}"},
            stdout=(work / f"replica-{n}-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
            cwd=work,
        )
        for i, port in enumerate(ports)
    ]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    if all([await _ready(http, p) for p in ports]):
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"replicas not ready; see {work}/replica-{n}-*.log")
                await asyncio.sleep(0.5)
            await asyncio.sleep(args.warmup)
            first, t0 = await probes_total(http, ports), time.monotonic()
            await asyncio.sleep(args.seconds)
            last, t1 = await probes_total(http, ports), time.monotonic()
            return (last - first) / (t1 - t0)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


async def _ready(http: aiohttp.ClientSession, port: int) -> bool:
    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
        return resp.status == 200


async def main(args: argparse.Namespace) -> None:
    server, throwaway = os.environ.get(ENV), None
    if not server:
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit(f"no PostgreSQL: set {ENV} or install postgresql")
        throwaway = Throwaway(bindir)
        server = throwaway.start()
    runner, targets = await start_targets()
    work = Path(tempfile.mkdtemp(prefix="monitor-cluster-bench-"))
    demand = args.checks / _seconds(args.interval)
    rows = []
    try:
        for n in args.replicas:
            rate = await measure(server, targets, n, args, work)
            rows.append((n, rate))
            print(f"{n} replica(s): {rate:,.0f} probes/s", file=sys.stderr)
    finally:
        await runner.cleanup()
        if throwaway is not None:
            throwaway.stop()
    print(f"\n{args.checks} http checks every {args.interval} (demand {demand:,.0f} probes/s), {os.cpu_count()} CPUs\n")
    print("| replicas | probes/s | vs 1 replica |")
    print("|---:|---:|---:|")
    base = rows[0][1] if rows else 1.0
    for n, rate in rows:
        print(f"| {n} | {rate:,.0f} | {rate / base:.2f}x |")


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0}
    for unit in ("ms", "s", "m"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--checks", type=int, default=3000)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))
