"""One command: `python -m bench` (from the checkout, with the venv's python). See docs/performance.md.

For each scale (number of checks) and each repeat, three runs on the same nginx targets,
one after the other so they never compete for the CPU:

  monitor   `monitor run` as a subprocess on a generated config of N `http` checks
            (scheduler -> probe -> rules -> incidents -> metrics), then a 503 drill;
  raw       bench/loadgen.py --mode raw: the same requests from a bare aiohttp loop;
  blackbox  prometheus-blackbox-exporter driven through /probe at the same rate.

The table shows medians over the repeats. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.procstat import cpu_seconds, memory
from bench.targets import Nginx, free_port

HERE = Path(__file__).resolve().parent
PY = sys.executable
MONITOR = str(Path(PY).with_name("monitor"))
UVLOOP_DIR = os.environ.get("BENCH_UVLOOP_PATH", "/work/bench-uvloop")


@dataclass
class Row:
    runner: str
    n: int
    probes: int = 0
    window: float = 0.0
    probes_per_s: float = 0.0
    cpu_s: float = 0.0
    cpu_per_1k: float = 0.0
    probes_per_cpu_s: float = 0.0
    cpu_pct: float = 0.0
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    rss_mb: float = 0.0
    metrics_ms: float | None = None
    metrics_kb: float | None = None
    incident_s: float | None = None
    page_s: float | None = None
    nginx_cpu_pct: float = 0.0
    failed: int = 0
    ready_s: float | None = None  # monitor: from exec to /readyz answering 200 (config load, store open)
    ready_rss_mb: float | None = None  # monitor: RSS at that moment, before any probe


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.nginx = Nginx(root / "nginx")
        self.pages: list[tuple[float, dict[str, Any]]] = []
        self.hook_port = free_port()

    # -- shared pieces ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.args.uvloop:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [UVLOOP_DIR, env.get("PYTHONPATH")]))
        return env

    async def start_hook(self) -> web.AppRunner:
        async def hook(request: web.Request) -> web.Response:
            self.pages.append((time.monotonic(), await request.json()))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.hook_port).start()
        return runner

    def measure_start(self, pid: int) -> tuple[float, float, int, float]:
        return time.monotonic(), cpu_seconds(pid), self.nginx.requests(), self.nginx.cpu()

    def measure_end(self, row: Row, pid: int, start: tuple[float, float, int, float], flip: bool = False) -> None:
        t0, cpu0, req0, ngx0 = start
        t1, cpu1, req1, ngx1 = time.monotonic(), cpu_seconds(pid), self.nginx.requests(), self.nginx.cpu()
        row.window = t1 - t0
        # stub_status counts itself once; the drill's check (monitor only) is not one of the N
        row.probes = req1 - req0 - 1 - (round(row.window / self.args.flip_interval) if flip else 0)
        row.probes_per_s = row.probes / row.window
        row.cpu_s = cpu1 - cpu0
        row.cpu_pct = 100 * row.cpu_s / row.window
        row.cpu_per_1k = 1000 * row.cpu_s / max(1, row.probes)
        row.probes_per_cpu_s = row.probes / row.cpu_s if row.cpu_s else float("inf")
        row.nginx_cpu_pct = 100 * (ngx1 - ngx0) / row.window

    def profiler(self, pid: int, name: str) -> subprocess.Popen[bytes] | None:
        """py-spy (a dev tool, not a dependency) sampling the measured window; off unless --profile."""
        if self.args.profile is None:
            return None
        self.args.profile.mkdir(parents=True, exist_ok=True)
        out = self.args.profile / f"{name}.txt"
        exe = shutil.which("py-spy") or str(Path(PY).with_name("py-spy"))
        seconds = str(int(self.args.window))
        cmd = [exe, "record", "-p", str(pid), "-d", seconds, "-r", "200", "-f", "raw", "-o", str(out)]
        return spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def urls_file(self, n: int) -> Path:
        path = self.root / f"urls-{n}.txt"
        path.write_text("".join(self.nginx.url(i) + "\n" for i in range(n)))
        return path

    # -- monitor ---------------------------------------------------------------------------

    def monitor_config(self, n: int, work: Path, port: int) -> Path:
        flip = self.args.flip_interval
        lines = [
            "version: 1",
            "monitor:",
            f"  listen: 127.0.0.1:{port}",
            f"  store: sqlite:///{work}/monitor.db",
            f"  workspace: {work}",
            "defaults:",
            f"  interval: {self.args.interval}s",
            "  timeout: 10s",
            "  failure_threshold: 3",
            "  success_threshold: 2",
            "people:",
            "  bench: {name: Bench, notify: [hook]}",
            "channels:",
            f"  hook: {{type: webhook, url: 'http://127.0.0.1:{self.hook_port}/hook'}}",
            "conditions:",
            "  production_down: {first_responders: [bench]}",
            "sites:",
            "  - name: flip",
            "    client: bench",
            "    checks:",
            f"      - {{type: http, url: '{self.nginx.flip_url}', interval: {flip}s, timeout: {flip}s}}",
        ]
        for i in range(n):
            lines += [
                f"  - name: s{i:05d}",
                "    client: bench",
                "    checks:",
                f"      - {{type: http, url: '{self.nginx.url(i)}', expect: {{status: 200}}}}",
            ]
        path = work / "sites.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def run_monitor(self, n: int, drill: bool) -> Row:
        work = Path(tempfile.mkdtemp(prefix=f"monitor-{n}-", dir=self.root))
        port = free_port()
        config = self.monitor_config(n, work, port)
        base = f"http://127.0.0.1:{port}"
        log = (work / "monitor.log").open("wb")
        cmd = [MONITOR, "run", "-c", str(config), "--log-level", "WARNING", "--log-format", "json"]
        proc = spawn(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env())
        row = Row("monitor", n)
        try:
            async with aiohttp.ClientSession() as http:
                t_exec = time.monotonic()
                try:
                    await wait_ready(http, base + "/readyz", proc)
                    row.ready_s, row.ready_rss_mb = time.monotonic() - t_exec, memory(proc.pid).rss_mb
                except RuntimeError as exc:
                    log.flush()
                    raise RuntimeError(f"{exc}:\n{(work / 'monitor.log').read_text()[-2000:]}") from None
                await asyncio.sleep(self.args.warmup)
                lag0 = parse_hist(await get_text(http, base + "/metrics"), "monitor_schedule_lag_seconds")
                start = self.measure_start(proc.pid)
                spy = self.profiler(proc.pid, f"monitor-{n}")
                await asyncio.sleep(self.args.window)
                self.measure_end(row, proc.pid, start, flip=True)
                if spy is not None:
                    await asyncio.to_thread(spy.wait)
                lag1 = parse_hist(await get_text(http, base + "/metrics"), "monitor_schedule_lag_seconds")
                lag = [(le, c1 - c0) for (le, c1), (_, c0) in zip(lag1, lag0, strict=True)]
                row.lag_p50_ms = hist_quantile(lag, 0.5) * 1000
                row.lag_p99_ms = hist_quantile(lag, 0.99) * 1000
                row.failed = count_failed(await get_text(http, base + "/metrics"))
                times, size = [], 0
                for _ in range(5):
                    t = time.perf_counter()
                    size = len((await get_text(http, base + "/metrics")).encode())
                    times.append(time.perf_counter() - t)
                row.metrics_ms = statistics.median(times) * 1000
                row.metrics_kb = size / 1024
                row.rss_mb = memory(proc.pid).rss_mb
                if drill:
                    row.incident_s, row.page_s = await self.drill(http, base)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            self.nginx.set_flip(False)
        return row

    async def drill(self, http: aiohttp.ClientSession, base: str) -> tuple[float | None, float | None]:
        """Turn /flip to 503; time until the incident is open and until the first page arrives."""
        self.pages.clear()
        t0 = time.monotonic()
        self.nginx.set_flip(True)
        opened = paged = None
        limit = 3 * self.args.flip_interval + 10
        while time.monotonic() - t0 < limit and (opened is None or paged is None):
            if opened is None:
                doc = orjson.loads(await get_text(http, base + "/api/v1/incidents?status=open"))
                if any(i["site"] == "flip" for i in doc["incidents"]):
                    opened = time.monotonic() - t0
            if paged is None and self.pages:
                paged = self.pages[0][0] - t0
            await asyncio.sleep(0.01)
        return opened, paged

    # -- raw aiohttp and blackbox_exporter -------------------------------------------------

    async def run_loadgen(self, n: int, mode: str) -> Row:
        exporter = None
        row = Row(mode, n)
        cmd = [
            PY,
            str(HERE / "loadgen.py"),
            "--mode",
            mode,
            "--urls",
            str(self.urls_file(n)),
            "--interval",
            str(self.args.interval),
            "--duration",
            str(self.args.warmup + self.args.window + 1),
            "--warmup",
            str(self.args.warmup),
        ]
        if self.args.uvloop:
            cmd.append("--uvloop")
        if mode == "raw":  # the same schedule monitor keeps: its first-round spread and its wake-up grid
            from monitor.scheduler import MAX_START_JITTER, QUANTUM, START_RATE

            spread = min(self.args.interval, max(n / START_RATE, min(MAX_START_JITTER, self.args.interval / 10)))
            cmd += ["--quantum", str(QUANTUM), "--spread", str(spread)]
        try:
            if mode == "blackbox":
                exporter, address = start_exporter(self.root)
                cmd += ["--exporter", address]
            gen = spawn(cmd, stdout=subprocess.PIPE, env=self.env())
            measured = exporter.pid if exporter is not None else gen.pid
            await asyncio.sleep(self.args.warmup)
            start = self.measure_start(measured)
            await asyncio.sleep(self.args.window)
            self.measure_end(row, measured, start)
            row.rss_mb = memory(measured).rss_mb
            out, _ = await asyncio.to_thread(gen.communicate, None, 60)
            result = orjson.loads(out.decode().strip().splitlines()[-1])
            row.failed = result["fail"]
            if mode == "raw" and result["lag_p50"] is not None:
                row.lag_p50_ms, row.lag_p99_ms = result["lag_p50"] * 1000, result["lag_p99"] * 1000
            if exporter is not None:
                t = time.perf_counter()
                async with aiohttp.ClientSession() as http:
                    size = len((await get_text(http, f"http://{address}/metrics")).encode())
                row.metrics_ms, row.metrics_kb = (time.perf_counter() - t) * 1000, size / 1024
        finally:
            if exporter is not None:
                exporter.terminate()
                exporter.wait(10)
        return row

    # -- the whole thing -------------------------------------------------------------------

    async def run(self) -> list[Row]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # clean up children
        self.nginx.start()
        hook = await self.start_hook()
        rows: list[Row] = []
        try:
            for n in self.args.scales:
                repeats = self.args.repeats if n == max(self.args.scales) else self.args.small_repeats
                for rep in range(repeats):
                    for runner in self.args.runners:
                        t = time.monotonic()
                        if runner == "monitor":
                            row = await self.run_monitor(n, drill=rep == 0 and not self.args.no_drill)
                        else:
                            row = await self.run_loadgen(n, runner)
                        rows.append(row)
                        print(
                            f"  load {os.getloadavg()[0]:.2f}  n={n:<6} rep={rep + 1} {runner:<8} "
                            f"{row.probes_per_s:8.1f} probes/s "
                            f"{row.probes_per_cpu_s:8.0f} probes/CPU-s  nginx {row.nginx_cpu_pct:4.1f}% "
                            f"({time.monotonic() - t:.0f}s)",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            await hook.cleanup()
            self.nginx.stop()
        return rows


# -- helpers -------------------------------------------------------------------------------


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, **kwargs)


async def get_text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        return await resp.text()


async def wait_ready(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"monitor exited with {proc.returncode} before it was ready")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError("monitor did not become ready in 120s")


def start_exporter(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if exe is None:
        raise RuntimeError("blackbox_exporter is missing: apt-get install prometheus-blackbox-exporter")
    conf = root / "blackbox.yml"
    conf.write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 10s\n"
        "    http:\n      preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n"
    )
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [exe, f"--config.file={conf}", f"--web.listen-address={address}", "--log.level=warn"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{address}/metrics", timeout=1).close()
            return proc, address
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("blackbox_exporter did not start")


def parse_hist(text: str, name: str) -> list[tuple[float, float]]:
    """Cumulative (le, count) pairs of an unlabelled histogram in exposition text."""
    out = []
    prefix = name + "_bucket{"
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, _, value = line.rpartition(" ")
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            out.append((float(le), float(value)))
    return out


def hist_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile() as Prometheus computes it: linear inside the bucket."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, prev_le, prev_count = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_le, prev_count = le, count
    return prev_le


def count_failed(text: str) -> int:
    total = 0
    for line in text.splitlines():
        if line.startswith("monitor_probes_total{") and 'result="ok"' not in line and 'site="flip"' not in line:
            total += int(float(line.rpartition(" ")[2]))
    return total


def median_rows(rows: list[Row]) -> list[Row]:
    groups: dict[tuple[int, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.n, row.runner), []).append(row)
    out = []
    for (n, runner), group in groups.items():
        merged = Row(runner, n)
        for f in fields(Row):
            if f.name in ("runner", "n"):
                continue
            values = [getattr(r, f.name) for r in group if getattr(r, f.name) is not None]
            if values:
                setattr(merged, f.name, statistics.median(values))
        out.append(merged)
    return out


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None or value != value else format(value, spec)


def table(rows: list[Row], args: argparse.Namespace) -> str:
    head = (
        "| checks | runner | probes/s | CPU % | CPU s / 1k probes | probes / CPU-s | lag p50 / p99 ms "
        "| RSS MB | /metrics ms / KB | 503 → incident s | → page s | nginx CPU % |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    by = {(r.n, r.runner): r for r in rows}
    for n in args.scales:
        for runner in args.runners:
            r = by.get((n, runner))
            if r is None:
                continue
            lag = f"{fmt(r.lag_p50_ms, '.1f')} / {fmt(r.lag_p99_ms, '.1f')}" if r.lag_p50_ms is not None else "—"
            met = f"{fmt(r.metrics_ms, '.0f')} / {fmt(r.metrics_kb, '.0f')}" if r.metrics_ms is not None else "—"
            lines.append(
                f"| {n:,} | {runner} | {r.probes_per_s:.1f} | {r.cpu_pct:.1f} | {r.cpu_per_1k:.3f} "
                f"| {r.probes_per_cpu_s:,.0f} | {lag} | {r.rss_mb:.0f} | {met} "
                f"| {fmt(r.incident_s, '.2f')} | {fmt(r.page_s, '.2f')} | {r.nginx_cpu_pct:.1f} |"
            )
    lines.append("")
    lines.append(
        "| checks | monitor ÷ raw (probes/CPU-s) | monitor ÷ blackbox (probes/CPU-s) "
        "| monitor start: ready s / RSS MB before probing |"
    )
    lines.append("|---|---|---|---|")
    for n in args.scales:
        m, raw, bb = by.get((n, "monitor")), by.get((n, "raw")), by.get((n, "blackbox"))
        if m is None:
            continue
        ratio_raw = f"{m.probes_per_cpu_s / raw.probes_per_cpu_s:.2f}" if raw else "—"
        ratio_bb = f"{m.probes_per_cpu_s / bb.probes_per_cpu_s:.2f}" if bb else "—"
        lines.append(f"| {n:,} | {ratio_raw} | {ratio_bb} | {fmt(m.ready_s, '.1f')} / {fmt(m.ready_rss_mb, '.0f')} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 and 10,000 checks, one short repeat (~2 min)")
    p.add_argument("--scales", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000, 10000])
    p.add_argument("--runners", type=lambda s: s.split(","), default=["monitor", "raw", "blackbox"])
    p.add_argument("--repeats", type=int, default=3, help="runs of the largest scale (the table shows medians)")
    p.add_argument("--small-repeats", type=int, default=1, help="runs of each smaller scale")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between probes of one check")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--window", type=float, help="seconds measured per run (default: one interval)")
    p.add_argument("--flip-interval", type=float, default=5.0, help="interval of the check the 503 drill flips")
    p.add_argument("--no-drill", action="store_true", help="skip the 503 -> incident -> page drill")
    p.add_argument("--uvloop", action="store_true", help=f"run every Python process on uvloop (from {UVLOOP_DIR})")
    p.add_argument("--profile", type=Path, help="py-spy the monitor runs into this folder (collapsed stacks)")
    p.add_argument("--json", type=Path, help="also write every run (not just medians) here")
    args = p.parse_args(argv)
    if args.quick:  # 10 s windows see a third of the checks: same rates, noisier figures
        args.scales, args.repeats, args.window = [1000, 10000], 1, args.window or 10.0
    if args.window is None:  # one interval: every check is probed once in the window, whatever the phases
        args.window = args.interval
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        rows = asyncio.run(Bench(args, Path(tmp)).run())
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"\n{len(rows)} runs in {time.monotonic() - started:.0f}s; interval {args.interval:g}s, "
        f"window {args.window:g}s, medians of {args.repeats} at {max(args.scales):,} checks "
        f"({args.small_repeats} below); loop {loop}; {os.cpu_count()} CPUs\n"
    )
    print(table(median_rows(rows), args))
    if args.json:
        args.json.write_text(orjson.dumps([asdict(r) for r in rows], option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
