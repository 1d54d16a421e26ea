"""Stripe webhooks in: verify the signature, refuse replays, hand the event to the engine.

    POST /webhooks/stripe          the site is the one whose secret verifies the signature
    POST /webhooks/stripe/{site}   only that site's secrets are tried

`Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>…]` where each v1 is
HMAC-SHA256(endpoint secret `whsec_…`, "{t}.{raw body}"). Several v1 values (secret
rotation) and several secrets per site are accepted; `t` must be within `tolerance`
seconds of now. Bad signature, stale timestamp, unparseable body or an event id already
seen -> 400 with a JSON error, and nothing reaches the sink. Otherwise 200.

Replays: `sink.seen_event(id)` answers whether the engine already stored the event;
ids being handled right now are also refused, so two concurrent deliveries of one
event cannot both pass. `sink.ingest_stripe_event` must itself be idempotent on the
event id (a unique key), which closes the last window across processes.

`problems_from_event(event, params)` turns charge.dispute.created, charge.refunded,
payout.failed and charge.failed (and any charge.* carrying a charge) into
financial_error Problems using the same rules as the stripe probe.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from aiohttp import web

from monitor.probes._platform_finance import problems_from_event
from monitor.probes.stripe import StripeCheck

__all__ = [
    "SignatureError",
    "StripeEventSink",
    "add_routes",
    "problems_from_event",
    "sign",
    "verify_signature",
    "webhook_secrets",
]

DEFAULT_TOLERANCE = 300
MAX_BODY = 1 << 20


class SignatureError(ValueError):
    """The request is not a genuine, fresh Stripe delivery; the message says why."""


class StripeEventSink(Protocol):
    async def ingest_stripe_event(self, site: str, event: dict[str, Any]) -> None: ...

    async def seen_event(self, event_id: str) -> bool: ...


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The Stripe-Signature header Stripe would send (for fakes and tests)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("Stripe-Signature has no timestamp")
    if not signatures:
        raise SignatureError("Stripe-Signature has no v1 signature")
    return timestamp, signatures


def verify_signature(
    payload: bytes, header: str, secrets: list[str], now: float, tolerance: int = DEFAULT_TOLERANCE
) -> dict[str, Any]:
    """The event, if `header` signs `payload` with one of `secrets` within `tolerance` seconds."""
    timestamp, signatures = _parse_header(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp is {abs(now - timestamp):.0f}s away from now (tolerance {tolerance}s)")
    signed = f"{timestamp}.".encode() + payload
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, s) for s in signatures):
            return _event(payload)
    raise SignatureError("no signature matches")


def _event(payload: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise SignatureError("body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise SignatureError("body is not a Stripe event (id and type)")
    return event


def webhook_secrets(checks: Sequence[Any]) -> dict[str, list[str]]:
    """Site name -> webhook secrets of its stripe checks (`config.checks` goes in)."""
    out: dict[str, list[str]] = {}
    for check in checks:
        params = getattr(check, "params", None)
        if isinstance(params, StripeCheck) and params.webhook_secret is not None:
            out.setdefault(check.site, []).append(params.webhook_secret.reveal())
    return out


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


def add_routes(
    app: web.Application,
    sink: StripeEventSink,
    secrets: Mapping[str, Sequence[str]],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Callable[[], float] = time.time,
) -> None:
    """Register POST /webhooks/stripe and /webhooks/stripe/{site} on `app`."""
    in_flight: set[str] = set()

    async def receive(request: web.Request) -> web.Response:
        only = request.match_info.get("site")
        if only is not None and only not in secrets:
            return _error(404, "unknown site")
        payload = await _read_capped(request)
        if payload is None:
            return _error(413, "body too large")
        header = request.headers.get("Stripe-Signature", "")
        site, event, reason = _verify_any(payload, header, secrets, only, now(), tolerance)
        if site is None or event is None:
            return _error(400, f"signature verification failed: {reason}")
        event_id = str(event["id"])
        if event_id in in_flight or await sink.seen_event(event_id):
            return _error(400, f"event {event_id} was already received (replay)")
        in_flight.add(event_id)
        try:
            await sink.ingest_stripe_event(site, event)
        finally:
            in_flight.discard(event_id)
        return web.json_response({"received": True, "site": site})

    app.router.add_post("/webhooks/stripe", receive)
    app.router.add_post("/webhooks/stripe/{site}", receive)


async def _read_capped(request: web.Request) -> bytes | None:
    """The raw body (signatures are over the exact bytes), or None past MAX_BODY."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _verify_any(
    payload: bytes, header: str, secrets: Mapping[str, Sequence[str]], only: str | None, now: float, tolerance: int
) -> tuple[str | None, dict[str, Any] | None, str]:
    reason = "no webhook secret is configured"
    for site, site_secrets in secrets.items():
        if only is not None and site != only:
            continue
        try:
            return site, verify_signature(payload, header, list(site_secrets), now, tolerance), ""
        except SignatureError as exc:
            reason = str(exc)
    return None, None, reason


class EngineSink:
    """Feeds verified Stripe events into the engine as findings of the site's stripe check.

    Seen event ids are stored durably (probe state, scope `stripe-events`), so a replay
    is refused across restarts too. Events with no finding change nothing else: they are
    not a passing probe and never count toward recovery.
    """

    SCOPE = "stripe-events"

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def seen_event(self, event_id: str) -> bool:
        return await self.engine.store.get_probe_state(self.SCOPE, event_id) is not None

    async def ingest_stripe_event(self, site: str, event: dict[str, Any]) -> None:
        from monitor.results import ProbeResult

        await self.engine.store.put_probe_state(self.SCOPE, str(event["id"]), {"type": event.get("type"), "site": site})
        check = next(
            (c for c in self.engine.config.checks if c.site == site and isinstance(c.params, StripeCheck)), None
        )
        if check is None:
            return
        problems = tuple(problems_from_event(event, check.params))
        if problems:
            await self.engine.handle_result(check, ProbeResult(duration=0.0, problems=problems), observe=False)
