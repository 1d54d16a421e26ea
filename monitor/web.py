"""The status page at `/`: server-rendered HTML, no external assets, readable on a phone."""

from __future__ import annotations

from html import escape
from typing import Any

_CSS = """
:root{--bg:#0f1115;--fg:#e6e6e6;--mut:#9aa0a6;--up:#2ea043;--down:#d73a49;--warn:#dbab09;--card:#171a21;--line:#262b36}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
background:var(--bg);color:var(--fg)}main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:22px 0 8px;color:var(--mut);font-weight:600}
.banner{padding:14px 16px;border-radius:8px;font-weight:700;margin-bottom:12px}
.halt{background:var(--down);color:#fff}.clear{background:#12361f;color:#9be9a8}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin:8px 0}
.row{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:center}.name{font-weight:600}
.pill{font-size:12px;padding:1px 8px;border-radius:10px;border:1px solid var(--line);color:var(--mut)}
.s-up{color:var(--up)}.s-down{color:var(--down)}.s-failing{color:var(--warn)}.s-pending{color:var(--mut)}
.bar{display:flex;gap:2px;margin-top:6px;height:18px}
.bar i{flex:1;max-width:8px;border-radius:2px;background:var(--line)}
.bar i.ok{background:var(--up)}.bar i.ko{background:var(--down)}
.check{border-top:1px solid var(--line);padding-top:6px;margin-top:6px}.detail{color:var(--mut);font-size:13px;
overflow-wrap:anywhere}.sev{font-weight:700}.SEV-1{color:#ff6b6b}.SEV-2{color:#ffa94d}.SEV-3{color:#ffd43b}
.SEV-4{color:#74c0fc}footer{color:var(--mut);font-size:12px;margin:24px 0}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def render_status_page(status: dict[str, Any], halt: dict[str, Any], *, title: str = "monitor") -> str:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        '<meta http-equiv=refresh content="15">',
        f"<title>{_e(title)} status</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)} status</h1>",
        _banner(halt),
        _incidents(status.get("open_incidents", [])),
        "<h2>Sites</h2>",
        *(_site(site) for site in status.get("sites", [])),
        "<footer>Refreshes every 15 s. JSON: <a href=/api/v1/status style=color:inherit>/api/v1/status</a>,"
        " <a href=/api/v1/incidents?status=open style=color:inherit>/api/v1/incidents</a>,"
        " <a href=/metrics style=color:inherit>/metrics</a></footer>",
        "</main></body></html>",
    ]
    return "".join(parts)


def _banner(halt: dict[str, Any]) -> str:
    if halt.get("halted"):
        conditions = ", ".join(halt.get("conditions", []))
        incidents = ", ".join(halt.get("incidents", []))
        return (
            f'<div class="banner halt" id=halt-banner>HALTED — all work stops. Halt conditions: {_e(conditions)}.'
            f" Incidents: {_e(incidents)}</div>"
        )
    override = halt.get("override")
    if override:
        return (
            f'<div class="banner clear" id=halt-banner>Halt lifted by {_e(override["by"])} until'
            f" {_e(override['until'])}: {_e(override['reason'])}</div>"
        )
    return '<div class="banner clear" id=halt-banner>All clear — no halt condition is active.</div>'


def _incidents(incidents: list[dict[str, Any]]) -> str:
    if not incidents:
        return "<h2>Open incidents</h2><div class=card>No open incidents.</div>"
    rows = ["<h2>Open incidents</h2>"]
    for i in incidents:
        responder = f"@{i['first_responder']}" if i.get("first_responder") else "no first responder"
        rows.append(
            f'<div class="card incident" id="{_e(i["id"])}"><div class=row>'
            f'<span class="sev {_e(i["severity"])}">{_e(i["severity"])}</span>'
            f"<span class=name>{_e(i['id'])}</span><span class=pill>{_e(i['status'])}</span>"
            f"<span class=pill>{_e(i['condition'])}</span><span class=pill>{_e(responder)}</span></div>"
            f"<div class=detail>{_e(i['description'])}</div>"
            f"<div class=detail>Opened {_e(i['opened_at'])} · paged: {_e(', '.join(i.get('paged', [])) or '—')}</div>"
            "</div>"
        )
    return "".join(rows)


def _site(site: dict[str, Any]) -> str:
    state = site["state"]
    client = f"<span class=pill>{_e(site['client'])}</span>" if site.get("client") else ""
    checks = "".join(_check(c) for c in site["checks"])
    return (
        f'<div class="card site" id="site-{_e(site["name"])}"><div class=row><span class=name>{_e(site["name"])}'
        f"</span>{client}<span class=s-{_e(state)}>● {_e(state)}</span></div>{checks}</div>"
    )


def _check(check: dict[str, Any]) -> str:
    last = check.get("last_result") or {}
    detail = last.get("detail") or "not probed yet"
    if last.get("problems"):
        target = str(check["target"])
        detail = "; ".join(p["summary"].removeprefix(target).strip() for p in last["problems"])
    bar = "".join(f"<i class={'ok' if ok else 'ko'}></i>" for ok in check.get("history", []))
    return (
        f"<div class=check><div class=row><span>{_e(check['name'])}</span><span class=pill>{_e(check['type'])}</span>"
        f"<span class=s-{_e(check['state'])}>{_e(check['state'])}</span></div>"
        f"<div class=detail>{_e(check['target'])} — {_e(detail)}</div><div class=bar>{bar}</div></div>"
    )
