"""A minimal scheduled HTTP loop, run as its own process so its CPU can be measured alone.

--mode raw:       GET each target once per interval with a new connection per request
                  (the Python ceiling: what any aiohttp prober must spend at least).
--mode blackbox:  GET blackbox_exporter's /probe?module=http_2xx&target=<target> at the
                  same schedule (the role Prometheus plays); keep-alive to the exporter.

Targets are spread evenly over the interval; with --quantum (the raw run uses monitor's
scheduler.QUANTUM) wake-ups are aligned to the same grid monitor uses, so both batch alike.
The loop stops by itself after --duration seconds and prints one JSON line:
counts and the schedule lag it saw after --warmup.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import orjson


async def main(args: argparse.Namespace, urls: list[str]) -> dict[str, object]:
    if args.mode == "blackbox":
        base = f"http://{args.exporter}/probe?module=http_2xx&target="
        urls = [base + urllib.parse.quote(u, safe="") for u in urls]
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=args.mode == "raw")
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    counts = {"ok": 0, "fail": 0}
    lags: list[float] = []
    slots = asyncio.Semaphore(args.concurrency)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    measure_from = t0 + args.warmup
    spread = args.spread or args.interval  # the targets' phases lie in [0, spread), as monitor's first round does

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.get(url, trace_request_ctx=SimpleNamespace(marks={})) as resp:
                body = await resp.read()
                good = resp.status == 200 and (args.mode == "raw" or b"\nprobe_success 1" in body)
        except (aiohttp.ClientError, OSError, TimeoutError):
            good = False
        counts["ok" if good else "fail"] += 1
        slots.release()

    tasks: set[asyncio.Task[None]] = set()
    traces = []
    if args.trace:  # monitor's per-phase timings, to price them
        from monitor.probes._http import trace_config

        traces.append(trace_config())
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=traces) as session:
        k = 0
        end = t0 + args.duration
        while True:
            due = t0 + (k // len(urls)) * args.interval + (k % len(urls)) * spread / len(urls)
            if due >= end:
                break
            wake = due + (-due) % args.quantum if args.quantum else due  # monitor's scheduler grid
            wait = wake - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await slots.acquire()
            started = loop.time()
            if started >= measure_from:
                lags.append(max(0.0, started - due))
            task = asyncio.create_task(one(session, urls[k % len(urls)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.wait(tasks, timeout=args.timeout + 1)
        await asyncio.sleep(max(0.0, end - loop.time()))  # alive for the whole run: the bench reads our RSS
    lags.sort()

    def q(p: float) -> float | None:
        return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else None

    return {"mode": args.mode, **counts, "lag_p50": q(0.5), "lag_p99": q(0.99), "uvloop": args.uvloop}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--urls", required=True)
    p.add_argument("--mode", choices=["raw", "blackbox"], required=True)
    p.add_argument("--exporter", default="")
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--warmup", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--spread", type=float, default=0.0, help="phases within this many seconds (default: interval)")
    p.add_argument("--quantum", type=float, default=0.0, help="wake on this grid (seconds), as monitor does")
    p.add_argument("--uvloop", action="store_true")
    p.add_argument("--trace", action="store_true", help="attach monitor's trace_config (phase timings)")
    return p.parse_args()


if __name__ == "__main__":
    ns = parse()
    targets = [line.strip() for line in Path(ns.urls).read_text().splitlines() if line.strip()]
    if ns.uvloop:
        import uvloop

        result = uvloop.run(main(ns, targets))
    else:
        result = asyncio.run(main(ns, targets))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
