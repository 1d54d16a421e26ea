"""The channel registry: one file per channel type, found by name.

A channel module declares a frozen params dataclass (its YAML keys besides `type`)
and registers a factory that builds a Channel from it:

    @dataclass(frozen=True, slots=True, kw_only=True)
    class SlackParams:
        url: Secret

    @register_channel("slack", SlackParams)
    def slack(params: SlackParams) -> Channel: ...

Channels only format and send. Retries, backoff, dedup and bookkeeping live in
one place, the outbox (notify/outbox.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp

P = TypeVar("P")

EVENTS = ("opened", "escalated", "acknowledged", "resolved", "grouped", "reminder")


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One notification to one person through one channel.

    `incidents` are incident views exactly as the API shows them (SPEC §6);
    `key` is the idempotency/dedup key, stable across restarts.
    """

    key: str
    event: str
    channel: str
    recipient: str
    recipient_name: str
    incidents: tuple[Mapping[str, Any], ...]
    sent_at: float
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a channel says about one attempt. The outbox decides what happens next."""

    ok: bool
    retry: bool = False
    reason: str = ""
    retry_after: float | None = None

    @classmethod
    def delivered(cls) -> Delivery:
        return cls(ok=True, reason="delivered")

    @classmethod
    def from_status(cls, status: int, retry_after: str | None = None) -> Delivery:
        """429 and 5xx retry (honouring Retry-After); other non-2xx fail for good."""
        if 200 <= status < 300:
            return cls.delivered()
        retryable = status == 429 or status >= 500
        after = None
        if retry_after:
            try:
                after = max(0.0, float(retry_after))
            except ValueError:
                after = None
        return cls(ok=False, retry=retryable, reason=f"http_{status}", retry_after=after)


class Channel(Protocol):
    async def send(self, message: Message, session: aiohttp.ClientSession) -> Delivery: ...


ChannelFactory = Callable[[Any], Channel]


@dataclass(frozen=True, slots=True)
class ChannelType:
    name: str
    params: type
    factory: ChannelFactory


CHANNELS: dict[str, ChannelType] = {}


def register_channel(name: str, params: type) -> Callable[[Callable[[P], Channel]], Callable[[P], Channel]]:
    def deco(factory: Callable[[P], Channel]) -> Callable[[P], Channel]:
        CHANNELS[name] = ChannelType(name, params, factory)
        return factory

    return deco


def load_all() -> dict[str, ChannelType]:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return CHANNELS
