"""Generic JSON webhook, optionally signed.

Body (UTF-8 JSON): `event`, `key`, `recipient`, `recipient_name`, `sent_at`, `links`,
and `incident` (the SPEC §6 view) or, for a grouped page, `incidents` (a list).

Headers: `Idempotency-Key: <outbox key>` (stable across retries and restarts, so a
receiver drops a repeat), and when `secret` is set:

    X-Monitor-Timestamp: <unix seconds>
    X-Monitor-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes,
compares in constant time, and rejects timestamps more than 5 minutes old (replay).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from monitor.notify import Channel, Delivery, Message, register_channel
from monitor.notify._send import post_json, secret_values, when
from monitor.redact import Secret
from monitor.schema import Duration, HttpUrl


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookParams:
    url: Secret
    secret: Secret | None = None
    timeout: Duration = Duration(10)

    def check(self) -> Iterator[tuple[str, str]]:
        yield from check_url("url", self.url)


def check_url(name: str, url: Secret) -> Iterator[tuple[str, str]]:
    try:
        HttpUrl.parse(url.reveal())
    except ValueError:
        yield name, "expected an http:// or https:// URL (value not shown: it may hold a secret)"


def body(message: Message) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event": message.event,
        "key": message.key,
        "recipient": message.recipient,
        "recipient_name": message.recipient_name,
        "sent_at": when(message),
        "links": dict(message.links),
    }
    if message.event == "grouped":
        doc["incidents"] = [dict(i) for i in message.incidents]
    else:
        doc["incident"] = dict(message.incidents[0]) if message.incidents else None
    return doc


def sign(secret: str, timestamp: str, raw: bytes) -> str:
    """The X-Monitor-Signature value for `raw` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


@dataclass(frozen=True, slots=True)
class Webhook:
    params: WebhookParams

    async def send(self, message: Message, session: aiohttp.ClientSession) -> Delivery:
        raw = orjson.dumps(body(message))
        headers = {"Idempotency-Key": message.key}
        if self.params.secret:
            timestamp = str(int(message.sent_at))
            headers["X-Monitor-Timestamp"] = timestamp
            headers["X-Monitor-Signature"] = sign(self.params.secret.reveal(), timestamp, raw)
        return await post_json(
            session,
            self.params.url.reveal(),
            None,
            raw=raw,
            headers=headers,
            timeout=self.params.timeout,
            secrets=secret_values(self.params.url, self.params.secret),
        )


@register_channel("webhook", WebhookParams)
def webhook(params: WebhookParams) -> Channel:
    return Webhook(params)
