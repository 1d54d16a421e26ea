"""Command line: run | check | probe | halt-status | incidents | demo.

Exit codes: 0 fine; 1 something is wrong (a probe failed, the system is halted,
the API refused); 2 the command could not do its job (bad config, usage,
cannot reach the engine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from monitor import __version__, logs
from monitor.config import Config, Listen, load_config
from monitor.errors import ConfigError, MonitorError

log = logging.getLogger("monitor")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    except MonitorError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Probe sites, open incidents, halt work, page people.")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", default=None, help="config file (default: $MONITOR_CONFIG or ./sites.yaml)")

    run = sub.add_parser("run", help="run the engine: probe, open incidents, serve the API")
    config_arg(run)
    run.add_argument("--listen", help="host:port for the API (overrides monitor.listen; also $MONITOR_LISTEN)")
    run.add_argument("--log-level", default=os.environ.get("MONITOR_LOG_LEVEL", "INFO"))
    run.add_argument(
        "--log-format", choices=["auto", "json", "human"], default=os.environ.get("MONITOR_LOG_FORMAT", "auto")
    )
    run.add_argument(
        "--region",
        default=os.environ.get("MONITOR_REGION"),
        help="this replica's region, for checks with `confirm: {regions: …}` (needs a postgresql:// store)",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate the config; exit 2 listing every error")
    config_arg(check)
    check.set_defaults(func=cmd_check)

    probe = sub.add_parser("probe", help="probe every check once and print a table; exit 1 if any fails")
    config_arg(probe)
    probe.add_argument("--site", help="only this site")
    probe.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    probe.set_defaults(func=cmd_probe)

    halt = sub.add_parser("halt-status", help="exit 0 when clear, 1 when halted, 2 when it cannot tell")
    config_arg(halt)
    halt.add_argument("--url", help="engine base URL (default: $MONITOR_URL or the config's monitor.listen)")
    halt.add_argument("--json", action="store_true", help="print the halt state as JSON")
    halt.set_defaults(func=cmd_halt_status)

    inc = sub.add_parser("incidents", help="list, show, ack or resolve incidents through the API")
    config_arg(inc)
    inc.add_argument("--url", help="engine base URL (default: $MONITOR_URL or the config's monitor.listen)")
    inc.add_argument("--token", help="bearer token (default: $MONITOR_TOKEN or $MONITOR_RESPONDER_TOKEN)")
    # the same options after the action too: `monitor incidents ack ID --by owen -c sites.yaml`
    late = argparse.ArgumentParser(add_help=False)
    late.add_argument("-c", "--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    late.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    late.add_argument("--token", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    isub = inc.add_subparsers(dest="action", metavar="ACTION", required=True)
    il = isub.add_parser("list", help="list incidents", parents=[late])
    il.add_argument("--status", choices=["open", "resolved", "all"], default="open")
    il.add_argument("--json", action="store_true")
    ishow = isub.add_parser("show", help="show one incident with its timeline", parents=[late])
    ishow.add_argument("id")
    ishow.add_argument("--json", action="store_true")
    iack = isub.add_parser("ack", help="acknowledge an incident (stops escalation)", parents=[late])
    iack.add_argument("id")
    iack.add_argument("--by", required=True, help="who acknowledges (a person in sites.yaml)")
    ires = isub.add_parser("resolve", help="resolve an incident", parents=[late])
    ires.add_argument("id")
    ires.add_argument("--by", required=True)
    ires.add_argument("--note", default="", help="what was done")
    inc.set_defaults(func=cmd_incidents)

    demo = sub.add_parser("demo", help="start local demo targets that fail in every way and run the engine on them")
    config_arg(demo)
    demo.add_argument("--listen", help="host:port for the API")
    demo.add_argument("--log-format", choices=["auto", "json", "human"], default="auto")
    demo.set_defaults(func=cmd_demo)
    return parser


def config_dir(config: Config) -> str:
    """Relative paths in the config (store, workspace) are relative to the config file."""
    return str(Path(config.source).resolve().parent)


def config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("MONITOR_CONFIG") or "sites.yaml")


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


# -- run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    logs.setup(args.log_level, args.log_format)
    config = load(args)
    listen = _listen(args, config)
    return _run_loop(serve(config, listen, region=args.region))


def _listen(args: argparse.Namespace, config: Config) -> Listen:
    override = getattr(args, "listen", None) or os.environ.get("MONITOR_LISTEN")
    if override:
        try:
            return Listen.parse(override)
        except ValueError:
            raise MonitorError(f"--listen: expected host:port like 127.0.0.1:9400, got {override!r}") from None
    return config.monitor.listen


def _run_loop(coro: Any) -> int:
    try:
        import uvloop  # type: ignore[import-not-found]

        return int(uvloop.run(coro))
    except ImportError:
        return int(asyncio.run(coro))


async def serve(
    config: Config, listen: Listen, *, ready: asyncio.Event | None = None, region: str | None = None
) -> int:
    """Run the engine and its API until SIGTERM/SIGINT; then drain and close."""
    from aiohttp import web

    from monitor.api import create_app
    from monitor.engine import Engine
    from monitor.store import open_store

    store = open_store(config.monitor.store, base_dir=config_dir(config))
    engine = Engine(config, store)
    cluster = None
    if config.monitor.store.startswith(("postgresql://", "postgres://")):
        from monitor.cluster import Cluster  # replicas share one PostgreSQL: heartbeats, one leader

        cluster = Cluster.from_env(engine, region)
        cluster.attach()
    elif region:
        raise MonitorError("--region needs replicas on a postgresql:// store (monitor.store)")
    runner = web.AppRunner(create_app(engine), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, listen.host, listen.port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        raise MonitorError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start()
        if cluster is not None:
            await cluster.start()
    except MonitorError:
        await runner.cleanup()
        raise
    log.info(
        "monitor %s listening on http://%s — %d checks on %d sites",
        __version__,
        listen,
        len(config.checks),
        len(config.sites),
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    drain = config.notifications.drain_timeout
    log.info("shutting down: stop probing, flush the outbox for up to %s", drain)
    try:
        async with asyncio.timeout(drain + 5):
            if cluster is not None:
                await cluster.stop()
            await engine.stop()
            if cluster is not None:
                await cluster.close()
    except TimeoutError:
        log.error("shutdown took too long; exiting anyway")
    await runner.cleanup()
    return 0


# -- check ---------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    config = load(args)
    print(
        f"{config_path(args)}: ok — {len(config.sites)} sites, {len(config.checks)} checks, "
        f"{len(config.people)} people, {len(config.channels)} channels, {len(config.conditions)} conditions"
    )
    return 0


# -- probe ---------------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    config = load(args)
    checks = [c for c in config.checks if args.site is None or c.site == args.site]
    if args.site is not None and not checks:
        known = ", ".join(sorted(config.sites)) or "none"
        print(f"monitor: no site named {args.site!r} (sites: {known})", file=sys.stderr)
        return 2
    return asyncio.run(_probe_all(config, checks, as_json=args.json))


async def _probe_all(config: Config, checks: list[Any], *, as_json: bool) -> int:
    from monitor.engine import Engine
    from monitor.store.sqlite import SqliteStore

    store = SqliteStore("sqlite:///:memory:")
    await store.open()
    engine = Engine(config, store)
    engine.session = engine.new_session()
    try:
        results = await asyncio.gather(*(engine.run_probe(c) for c in checks))
    finally:
        await engine.session.close()
        await store.close()
    rows = []
    for check, result in zip(checks, results, strict=True):
        detail = "; ".join(p.summary for p in result.problems) if result.problems else result.detail
        rows.append(
            [check.site, check.name, check.type, result.result_label, f"{result.duration * 1000:.0f}ms", detail]
        )
        if as_json:
            doc = {
                "site": check.site,
                "check": check.name,
                "type": check.type,
                "ok": result.ok,
                "result": result.result_label,
                "duration_seconds": result.duration,
                "status_code": result.status_code,
                "problems": [
                    {"condition": p.condition, "kind": p.kind.value, "summary": p.summary} for p in result.problems
                ],
                "detail": result.detail,
            }
            print(orjson.dumps(doc).decode())
    if not as_json:
        _table(["SITE", "CHECK", "TYPE", "RESULT", "TIME", "DETAIL"], rows)
    return 0 if all(r.ok for r in results) else 1


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]).rstrip())


# -- talking to a running engine -----------------------------------------------------------


def _base_url(args: argparse.Namespace) -> tuple[str, Config | None]:
    url = getattr(args, "url", None) or os.environ.get("MONITOR_URL")
    config: Config | None = None
    if url is None or getattr(args, "command", "") == "halt-status":
        with contextlib.suppress(ConfigError):
            config = load(args)
    if url is None:
        if config is None:
            config = load(args)  # raise the config error: we have nowhere to ask
        host = config.monitor.listen.host
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{config.monitor.listen.port}"
    return url.rstrip("/"), config


class Unreachable(Exception):
    pass


def _request(
    url: str, *, method: str = "GET", body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only, built from config
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, orjson.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, orjson.loads(exc.read() or b"null")
        except orjson.JSONDecodeError:
            return exc.code, {"error": exc.reason}
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"cannot reach the engine at {url}: {reason}") from None


def cmd_halt_status(args: argparse.Namespace) -> int:
    url, config = _base_url(args)
    try:
        status, doc = _request(f"{url}/api/v1/halt")
    except Unreachable as exc:
        halt_file = config.workspace / ".tmp" / "HALT" if config else None
        if halt_file is not None and halt_file.exists():
            print(f"HALTED (the engine does not answer; {halt_file} exists): {halt_file.read_text().strip()}")
            return 1
        print(f"cannot tell: {exc}", file=sys.stderr)
        return 2
    if status != 200 or not isinstance(doc, dict) or "halted" not in doc:
        print(f"cannot tell: {url}/api/v1/halt answered {status}", file=sys.stderr)
        return 2
    if args.json:
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    if doc["halted"]:
        if not args.json:
            print(f"HALTED since {doc.get('since')}: {', '.join(doc['conditions'])} ({', '.join(doc['incidents'])})")
        return 1
    if not args.json:
        lifted = doc.get("override")
        print(
            "clear"
            + (f" (halt lifted by {lifted['by']} until {lifted['until']}: {lifted['reason']})" if lifted else "")
        )
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    url, _ = _base_url(args)
    token = args.token or os.environ.get("MONITOR_TOKEN") or os.environ.get("MONITOR_RESPONDER_TOKEN")
    try:
        if args.action == "list":
            status, doc = _request(f"{url}/api/v1/incidents?status={args.status}")
        elif args.action == "show":
            status, doc = _request(f"{url}/api/v1/incidents/{args.id}")
        elif args.action == "ack":
            status, doc = _request(
                f"{url}/api/v1/incidents/{args.id}/ack", method="POST", body={"by": args.by}, token=token
            )
        else:
            body = {"by": args.by, "note": args.note}
            status, doc = _request(f"{url}/api/v1/incidents/{args.id}/resolve", method="POST", body=body, token=token)
    except Unreachable as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    if status >= 400:
        message = doc.get("error") if isinstance(doc, dict) else doc
        print(f"monitor: {status}: {message}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    elif args.action == "list":
        rows = [
            [i["id"], i["status"], i["severity"], i["site"], i["condition"], i["opened_at"]] for i in doc["incidents"]
        ]
        if rows:
            _table(["ID", "STATUS", "SEVERITY", "SITE", "CONDITION", "OPENED"], rows)
        else:
            print(f"no {args.status} incidents" if args.status != "all" else "no incidents")
    else:
        _print_incident(doc)
    return 0


def _print_incident(doc: dict[str, Any]) -> None:
    print(f"{doc['id']}  {doc['status']}  {doc['severity']}  {doc['condition']}{'  (halt)' if doc['halt'] else ''}")
    print(f"  {doc['description']}")
    print(f"  impact: {doc['impact']}")
    print(f"  first responder: @{doc['first_responder']}  paged: {', '.join(doc['paged']) or '—'}")
    acked, resolved = doc["acknowledged_at"] or "—", doc["resolved_at"] or "—"
    print(f"  opened {doc['opened_at']}  acknowledged {acked}  resolved {resolved}")
    print("  timeline:")
    for e in doc["timeline"]:
        print(f"    {e['at']}  {e['event']:<16} {e['by'] or '':<10} {e['detail']}")


# -- demo ----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    logs.setup("INFO", args.log_format)
    return _run_loop(run_demo(config_path(args), listen=getattr(args, "listen", None)))
