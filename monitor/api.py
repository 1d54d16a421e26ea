"""The HTTP API (SPEC §6): /metrics, health, the status page, incidents, halt and override.

Nothing a request says can crash the engine: bodies are size-capped and parsed
into typed values here, every refusal is a JSON error naming the field, and
unexpected errors become a 500 with a log line, never an unwinding engine.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from monitor.clock import parse_rfc3339
from monitor.engine import Engine
from monitor.errors import ApiError
from monitor.incidents.lifecycle import TransitionRefused
from monitor.incidents.model import Incident
from monitor.metrics import EngineCollector, exposition
from monitor.redact import Secret
from monitor.schema import Duration
from monitor.stripe_webhooks import EngineSink, webhook_secrets
from monitor.stripe_webhooks import add_routes as add_stripe_routes
from monitor.web import render_status_page

log = logging.getLogger(__name__)

ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
MAX_BODY = 64 * 1024
MAX_NOTE = 4000
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def error(status: int, message: str, field: str | None = None) -> web.Response:
    doc: dict[str, Any] = {"error": message}
    if field is not None:
        doc["field"] = field
    return json_response(doc, status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.message, exc.field)
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"request body larger than {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error(exc.status, exc.reason)
        raise
    except Exception:
        log.exception("API handler failed", extra={"event_id": request.path})
        return error(500, "internal error; see the monitor's log")


def create_app(engine: Engine) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY)
    app[ENGINE] = engine
    collector = EngineCollector(engine)

    async def metrics(_: web.Request) -> web.Response:
        body = exposition(collector)  # generate_latest's text, written fast for 10,000 checks
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", status_page)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", get_incident)
    app.router.add_post("/api/v1/incidents/{id}/ack", ack)
    app.router.add_post("/api/v1/incidents/{id}/resolve", resolve)
    app.router.add_post("/api/v1/incidents/{id}/notes", annotate)
    app.router.add_get("/api/v1/halt", halt)
    app.router.add_post("/api/v1/override", override)
    app.router.add_get("/api/v1/maintenance", maintenance)
    app.router.add_post("/api/v1/sites/{site}/silence", silence)
    app.router.add_delete("/api/v1/sites/{site}/silence", unsilence)
    add_stripe_routes(app, EngineSink(engine), webhook_secrets(engine.config.checks))
    return app


# -- auth and bodies -----------------------------------------------------------------------


def require(request: web.Request, role: str) -> None:
    """Bearer token check in constant time. The owner token may do what a responder may."""
    tokens = request.app[ENGINE].config.monitor.tokens
    allowed: list[Secret] = [t for t in (tokens.owner, tokens.responder if role == "responder" else None) if t]
    if not allowed:
        raise ApiError(401, f"no {role} token is configured on this monitor (monitor.tokens.{role})")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "missing bearer token (Authorization: Bearer …)")
    ok = False
    for token in allowed:
        ok |= hmac.compare_digest(given.strip().encode(), token.reveal().encode())
    if not ok:
        raise ApiError(401, f"wrong token for the {role} role")


async def body_of(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object")
    return doc


def text_field(doc: dict[str, Any], name: str, *, required: bool, limit: int = MAX_NOTE) -> str:
    value = doc.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"field {name!r} is required", field=name)
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"field {name!r} must be a string", field=name)
    if len(value) > limit:
        raise ApiError(400, f"field {name!r} is longer than {limit} characters", field=name)
    return value


def person_field(request: web.Request, doc: dict[str, Any], name: str = "by") -> str:
    handle = text_field(doc, name, required=True, limit=64).strip().lstrip("@")
    if not _HANDLE.match(handle):
        raise ApiError(400, f"field {name!r} must be a person handle like 'owen'", field=name)
    people = request.app[ENGINE].config.people
    if people and handle not in people:
        raise ApiError(400, f"field {name!r}: {handle!r} is not in sites.yaml people", field=name)
    return handle


def check_fields(doc: dict[str, Any], allowed: set[str]) -> None:
    for key in doc:
        if key not in allowed:
            raise ApiError(400, f"unknown field {key!r}; expected {', '.join(sorted(allowed))}", field=key)


# -- handlers ------------------------------------------------------------------------------


async def healthz(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if not engine.ready:
        return json_response({"status": "starting"}, 503)
    try:
        await engine.store.ping()
    except Exception as exc:  # any store failure means not ready
        return json_response({"status": "store unavailable", "error": type(exc).__name__}, 503)
    return json_response({"status": "ready"})


async def status_page(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    html = render_status_page(engine.status(), engine.halt.to_json(), title=engine.config.monitor.title)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def status(request: web.Request) -> web.Response:
    return json_response(request.app[ENGINE].status())


async def list_incidents(request: web.Request) -> web.Response:
    which = request.query.get("status", "all")
    if which not in ("open", "resolved", "all"):
        raise ApiError(400, "status must be open, resolved or all", field="status")
    try:
        limit = int(request.query.get("limit", "200"))
    except ValueError:
        raise ApiError(400, "limit must be a whole number", field="limit") from None
    if not 1 <= limit <= 5000:
        raise ApiError(400, "limit must be between 1 and 5000", field="limit")
    engine = request.app[ENGINE]
    if which == "open":
        incidents = engine.open_incidents()[:limit]
    else:
        incidents = await engine.store.list_incidents(which, limit=limit)  # type: ignore[arg-type]
    return json_response({"incidents": [i.to_json() for i in incidents]})


async def get_incident(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    iid = request.match_info["id"]
    incident = engine.open.get(iid) or await engine.store.get_incident(iid)
    if incident is None:
        raise ApiError(404, f"no incident {iid}")
    return json_response(incident.to_json())


IncidentChange = Callable[[Engine, str, str, str], Awaitable[Incident]]


async def change_incident(request: web.Request, change: IncidentChange, *, note_required: bool) -> web.Response:
    """Responder-only change of one incident from a `{"by", "note"}` body."""
    require(request, "responder")
    doc = await body_of(request)
    check_fields(doc, {"by", "note"})
    by = person_field(request, doc)
    note = text_field(doc, "note", required=note_required)
    iid = request.match_info["id"]
    try:
        incident = await change(request.app[ENGINE], iid, by, note)
    except KeyError:
        raise ApiError(404, f"no incident {iid}") from None
    except TransitionRefused as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(incident.to_json())


async def _acknowledge(engine: Engine, iid: str, by: str, note: str) -> Incident:
    incident = await engine.acknowledge(iid, by)
    return await engine.annotate(iid, by, note) if note.strip() else incident


async def _resolve(engine: Engine, iid: str, by: str, note: str) -> Incident:
    return await engine.resolve(iid, by, note)


async def _annotate(engine: Engine, iid: str, by: str, note: str) -> Incident:
    if not note.strip():
        raise ApiError(400, "field 'note' must not be empty", field="note")
    return await engine.annotate(iid, by, note)


async def ack(request: web.Request) -> web.Response:
    return await change_incident(request, _acknowledge, note_required=False)


async def resolve(request: web.Request) -> web.Response:
    return await change_incident(request, _resolve, note_required=False)


async def annotate(request: web.Request) -> web.Response:
    return await change_incident(request, _annotate, note_required=True)


async def halt(request: web.Request) -> web.Response:
    return json_response(request.app[ENGINE].halt.to_json())


async def override(request: web.Request) -> web.Response:
    require(request, "owner")
    doc = await body_of(request)
    check_fields(doc, {"action", "reason", "until", "by"})
    action = text_field(doc, "action", required=True, limit=32)
    engine = request.app[ENGINE]
    by = person_field(request, doc) if doc.get("by") is not None else "owner"
    if action == "cancel":
        revoked = await engine.cancel_override(by=by)
        if revoked is None:
            raise ApiError(409, "no override is active")
        return json_response(engine.halt.to_json())
    if action != "lift_halt":
        raise ApiError(400, "action must be 'lift_halt' or 'cancel'", field="action")
    reason = text_field(doc, "reason", required=True).strip()
    if not reason:
        raise ApiError(400, "field 'reason' must say why the halt is lifted", field="reason")
    until = _until(text_field(doc, "until", required=True, limit=64), engine.clock.now())
    if not engine.halt.halted:
        raise ApiError(409, "the system is not halted; nothing to lift")
    await engine.lift_halt(reason=reason, until=until, by=by)
    return json_response(engine.halt.to_json())


def _until(text: str, now: float) -> float:
    """An RFC 3339 time or a duration from now ("2h"); must be in the future, within 7 days."""
    try:
        until = now + Duration.parse(text)
    except ValueError:
        try:
            until = parse_rfc3339(text)
        except ValueError:
            raise ApiError(400, "field 'until' must be an RFC 3339 time or a duration like 2h", field="until") from None
    if until <= now:
        raise ApiError(400, "field 'until' must be in the future", field="until")
    if until - now > 7 * 86400:
        raise ApiError(400, "field 'until' must be within 7 days", field="until")
    return until


async def maintenance(request: web.Request) -> web.Response:
    return json_response(request.app[ENGINE].maintenance_view())


async def silence(request: web.Request) -> web.Response:
    """Put a site ("*": all) in maintenance: probes go on, no incident opens, nobody is paged."""
    require(request, "responder")
    doc = await body_of(request)
    check_fields(doc, {"by", "reason", "duration"})
    by = person_field(request, doc)
    reason = text_field(doc, "reason", required=True).strip()
    if not reason:
        raise ApiError(400, "field 'reason' must say why the site is silenced", field="reason")
    duration = doc.get("duration")
    if not isinstance(duration, str | int | float) or isinstance(duration, bool):
        raise ApiError(400, "field 'duration' must be a duration like 2h (or seconds)", field="duration")
    site = request.match_info["site"]
    try:
        return json_response(await request.app[ENGINE].silence_site(site, by, reason, duration))
    except KeyError:
        raise ApiError(404, f"no site {site!r} in sites.yaml") from None
    except ValueError as exc:
        raise ApiError(400, f"field 'duration': {exc}", field="duration") from None


async def unsilence(request: web.Request) -> web.Response:
    require(request, "responder")
    doc = await body_of(request)
    check_fields(doc, {"by"})
    by = person_field(request, doc)
    site = request.match_info["site"]
    ended = await request.app[ENGINE].unsilence_site(site, by)
    return json_response({"ended": ended})
