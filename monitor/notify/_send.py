"""What every channel shares: one POST that turns any outcome into a Delivery.

A reason never carries a URL, a header or an exception message (aiohttp puts the
URL, and so a Slack webhook path or a token in a query string, into some of its
messages); only the status, the exception class, and a short piece of the
receiver's answer with every secret the channel knows replaced by a fingerprint.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import orjson

from monitor.clock import rfc3339
from monitor.notify import Delivery, Message
from monitor.redact import Secret, fingerprint

REASON_BODY_CHARS = 160
_SPACE = re.compile(r"\s+")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret (longest first) shown as a fingerprint."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, fingerprint(secret))
    return text


def secret_values(*values: Secret | str | None) -> list[str]:
    """The revealed values of the given secrets, plus their URL path and query parts."""
    out: list[str] = []
    for value in values:
        if value is None:
            continue
        raw = value.reveal() if isinstance(value, Secret) else value
        out.append(raw)
        tail = raw.split("://", 1)[-1]
        if "/" in tail:
            out.append(tail.split("/", 1)[1])
        if "?" in raw:
            out.append(raw.split("?", 1)[1])
    return [s for s in out if len(s) >= 4]


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    timeout: float,  # noqa: ASYNC109 - a per-request aiohttp timeout
    secrets: Iterable[str],
    headers: Mapping[str, str] | None = None,
    raw: bytes | None = None,
) -> Delivery:
    """POST `body` as JSON (or the exact bytes `raw`); 2xx delivered, 429/5xx retry, other 4xx fail."""
    data = raw if raw is not None else orjson.dumps(body)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        async with session.post(
            url,
            data=data,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            text = (await resp.content.read(4096)).decode("utf-8", "replace")
            delivery = Delivery.from_status(resp.status, retry_after_seconds(resp.headers.get("Retry-After")))
    except TimeoutError:
        return Delivery(ok=False, retry=True, reason="timeout")
    except asyncio.CancelledError:
        raise
    except aiohttp.InvalidURL:
        return Delivery(ok=False, retry=False, reason="invalid_url")
    except (aiohttp.ClientError, OSError) as exc:
        return Delivery(ok=False, retry=True, reason=f"connection: {type(exc).__name__}")
    if delivery.ok:
        return delivery
    snippet = _SPACE.sub(" ", scrub(text, secrets)).strip()[:REASON_BODY_CHARS]
    reason = f"{delivery.reason}: {snippet}" if snippet else delivery.reason
    return Delivery(ok=False, retry=delivery.retry, reason=reason, retry_after=delivery.retry_after)


def retry_after_seconds(value: str | None) -> str | None:
    """Retry-After as seconds (it may also be an HTTP date)."""
    if not value or value.strip().replace(".", "", 1).isdigit():
        return value
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return str(max(0.0, moment.timestamp() - time.time()))


def incident_link(message: Message, incident: Mapping[str, Any]) -> str | None:
    return message.links.get(str(incident.get("id")))


def when(message: Message) -> str:
    return rfc3339(message.sent_at) or ""


SEVERITY_WORD = {"SEV-1": "critical", "SEV-2": "error", "SEV-3": "warning", "SEV-4": "info"}
