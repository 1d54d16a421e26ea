"""The durable outbox: the one place that delivers, retries, orders and groups notifications.

Rows are written by the engine in the same transaction as the incident change
that caused them (notify/planner.py), so a page exists before anyone tries to
send it and survives kill -9. The worker:

- delivers due rows through the channel registry, FIFO per channel: a row in
  backoff holds back the later rows of its channel, so a `resolved` never
  overtakes its `opened`;
- on a retryable answer (429, 5xx, timeout, refused) reschedules the row with
  exponential backoff and jitter (tenacity's wait strategy, capped), or exactly
  Retry-After when the receiver sends one; a channel that is down delays, never
  drops; any other 4xx fails the row for good with the reason recorded;
- groups storms (`plan_storm`): per person and channel, once `group_threshold`
  incidents open within `group_window`, the rest of that window's `opened` pages
  go out as one `grouped` page;
- re-posts open incidents to channels that need it (Alertmanager's resolve timeout).

Delivery is at least once: a crash after the receiver accepted a page but before
the row is marked delivered sends it again after the restart. Every delivery
carries the row's key (webhook `Idempotency-Key`, PagerDuty `dedup_key` = incident
id, Alertmanager's label set), so receivers drop the repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp
import tenacity

from monitor import notify
from monitor.notify import Channel, Delivery, Message
from monitor.notify._send import scrub
from monitor.store import OutboxItem, Store

if TYPE_CHECKING:
    from monitor.clock import Clock
    from monitor.config import Config
    from monitor.metrics import Telemetry

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks at the outbox when nothing wakes the worker
RETRY_AFTER_CAP = 3600.0  # a receiver may ask us to wait, but not forever
HORIZON = 10 * 365 * 86400.0  # "every pending row" for due_outbox


class Backoff:
    """Seconds to wait before attempt `n + 1`: exponential with jitter, capped; Retry-After wins."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._wait = tenacity.wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self._state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), RETRY_AFTER_CAP)
        self._state.attempt_number = max(1, attempts)
        return float(self._wait(self._state))


# -- storm control (pure) ------------------------------------------------------------------


@dataclass(slots=True)
class StormWindow:
    """Per person and channel: when the current window started, how many pages went out in it."""

    start: float
    pages: int = 0
    storm: bool = False


@dataclass(slots=True)
class StormPlan:
    send: list[OutboxItem] = field(default_factory=list)  # one `opened` page each, now
    group: list[OutboxItem] = field(default_factory=list)  # one `grouped` page for all, now
    hold: list[OutboxItem] = field(default_factory=list)  # wait for `hold_until`, then group
    hold_until: float = 0.0


def plan_storm(
    items: Sequence[OutboxItem], window: StormWindow | None, now: float, size: float, threshold: int
) -> tuple[StormPlan, StormWindow]:
    """Decide how due `opened` pages for one person+channel go out.

    Below the threshold pages go out one by one. When the window's pages reach
    `threshold`, the waiting ones go out at once as one grouped page (a lone one waits
    for the window's end, so the next ones join it), and every later one in the window
    waits for its end. A storm carries into the next window until a window stays quiet.
    """
    if threshold < 2 or size <= 0 or not items:
        return StormPlan(send=list(items)), window or StormWindow(now)
    if window is None or now >= window.start + size:
        carry = window is not None and window.storm and now < window.start + 2 * size
        window = StormWindow(now, storm=carry)
        if carry:
            window.pages += len(items)
            return _now(items), window
    if window.storm:
        return StormPlan(hold=list(items), hold_until=window.start + size), window
    if window.pages + len(items) >= threshold:
        window.storm = True
        if len(items) == 1:
            return StormPlan(hold=list(items), hold_until=window.start + size), window
        window.pages += len(items)
        return StormPlan(group=list(items)), window
    window.pages += len(items)
    return StormPlan(send=list(items)), window


def _now(items: Sequence[OutboxItem]) -> StormPlan:
    return StormPlan(group=list(items)) if len(items) > 1 else StormPlan(send=list(items))


def grouped_item(members: Sequence[OutboxItem], now: float) -> OutboxItem:
    """One `grouped` row standing for `members`; its key depends only on the members."""
    first = members[0]
    digest = hashlib.sha256("|".join(sorted(m.key for m in members)).encode()).hexdigest()[:16]
    incidents = [m.payload.get("incident") for m in members]
    return OutboxItem(
        key=f"grouped:{first.recipient}:{first.channel}:{digest}",
        channel=first.channel,
        recipient=first.recipient,
        event="grouped",
        incident_ids=tuple(i for m in members for i in m.incident_ids),
        payload={"incidents": [i for i in incidents if i is not None]},
        created_at=min(m.created_at for m in members),
        next_attempt_at=now,
    )


# -- the worker ----------------------------------------------------------------------------


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        config: Config,
        clock: Clock,
        session: aiohttp.ClientSession,
        telemetry: Telemetry,
        *,
        batch: int = 500,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.session = session
        self.telemetry = telemetry
        self.batch = batch
        settings = config.notifications
        self.backoff = Backoff(settings.retry_initial, settings.retry_max)
        self.channels: dict[str, Channel] = build_channels(config)
        self.windows: dict[tuple[str, str], StormWindow] = {}
        self.secrets = config.secrets()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closing = False
        self._next_refresh: dict[str, float] = {}
        # Replicas (cluster.py): asked before every delivery; False = we are not (or no longer) the leader.
        self.fence: Callable[[], Awaitable[bool]] | None = None

    # -- running ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now (the engine calls this after every incident change)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until drained or cancelled; errors are logged and retried, never raised."""
        while not self._closing:
            self._wake.clear()
            try:
                await self.deliver_due()
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("outbox worker error: %s", type(exc).__name__, extra={"event_id": "outbox_error"})
            await self._idle(POLL)

    async def _idle(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def drain(self, timeout: float) -> int:  # noqa: ASYNC109 - a bound on the whole flush
        """SIGTERM: stop the loop and deliver what is due for at most `timeout` seconds.

        Returns how many rows stay pending (they are delivered after the next start).
        """
        self._closing = True
        self.wake()
        try:
            async with asyncio.timeout(timeout):
                await self._release_storm_holds()
                while await self.deliver_due():
                    pass
        except TimeoutError:
            log.warning("outbox drain timed out", extra={"event_id": "outbox_drain_timeout"})
        left = await self.store.outbox_depth()
        self.telemetry.queue_depth = left
        if left:
            log.warning("%d notifications stay queued for the next start", left, extra={"event_id": "outbox_left"})
        return left

    async def _release_storm_holds(self) -> None:
        """Make `opened` pages held for a storm window due now, so a drain sends them (grouped)."""
        now = self.clock.now()
        for item in await self.store.due_outbox(now + HORIZON, limit=self.batch):
            if item.event == "opened" and item.attempts == 0 and item.next_attempt_at > now:
                await self.store.save_outbox_item(replace(item, next_attempt_at=now))

    # -- one pass --------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """One pass over the outbox; returns how many deliveries were attempted."""
        async with self._lock:
            now = self.clock.now()
            pending = await self.store.due_outbox(now + HORIZON, limit=self.batch)
            if await self._group_storms(pending, now):
                pending = await self.store.due_outbox(now + HORIZON, limit=self.batch)
            by_channel: dict[str, list[OutboxItem]] = defaultdict(list)
            for item in sorted(pending, key=lambda i: (i.created_at, i.key)):
                by_channel[item.channel].append(item)
            counts = await asyncio.gather(*(self._deliver_fifo(rows, now) for rows in by_channel.values()))
            self.telemetry.queue_depth = await self.store.outbox_depth()
            return sum(counts)

    async def _deliver_fifo(self, rows: Sequence[OutboxItem], now: float) -> int:
        """In creation order; stop at the first row waiting out a backoff (it holds the rest)."""
        attempted = 0
        held: set[str] = set()
        for item in rows:
            if item.attempts == 0 and item.next_attempt_at > now:  # storm hold: does not block others
                held.update(item.incident_ids)
                continue
            if held.intersection(item.incident_ids):  # never overtake its own held `opened`
                continue
            if item.next_attempt_at > now:
                break
            if self.fence is not None and not await self.fence():
                break  # deposed: the new leader delivers it
            attempted += 1
            if not await self._attempt(item, now):
                break
        return attempted

    async def _attempt(self, item: OutboxItem, now: float) -> bool:
        """Send one row; record the outcome. False when the channel should be left alone for now."""
        channel = self.channels.get(item.channel)
        if channel is None:
            delivery = Delivery(ok=False, reason=f"channel {item.channel!r} is not configured")
        else:
            try:
                delivery = await channel.send(self.message(item, now), self.session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a channel bug must not stop the outbox
                delivery = Delivery(ok=False, retry=True, reason=f"error: {type(exc).__name__}")
        reason = scrub(delivery.reason, self.secrets)
        done = self.clock.now()
        if delivery.ok:
            saved, outcome = item.delivered(at=done), "delivered"
        elif delivery.retry:
            wait = self.backoff.delay(item.attempts + 1, delivery.retry_after)
            saved, outcome = item.retried(at=done + wait, error=reason), "retry"
        else:
            saved, outcome = item.failed(at=done, error=reason), "failed"
        await self.store.save_outbox_item(saved)
        self.telemetry.notification(item.channel, outcome)
        level = logging.INFO if delivery.ok else logging.WARNING if delivery.retry else logging.ERROR
        log.log(
            level,
            "notification %s: %s to @%s (attempt %d)%s",
            outcome,
            item.event,
            item.recipient,
            saved.attempts,
            f": {reason}" if not delivery.ok else "",
            extra={"channel": item.channel, "incident": ",".join(item.incident_ids), "event_id": "notification"},
        )
        return delivery.ok or not delivery.retry

    async def _group_storms(self, pending: Sequence[OutboxItem], now: float) -> bool:
        """Apply storm control to due, never-tried `opened` rows. True if rows changed."""
        settings = self.config.notifications
        fresh: dict[tuple[str, str], list[OutboxItem]] = defaultdict(list)
        for item in sorted(pending, key=lambda i: (i.created_at, i.key)):
            if item.event == "opened" and item.attempts == 0 and item.next_attempt_at <= now:
                fresh[(item.recipient, item.channel)].append(item)
        changed = False
        for who, items in fresh.items():
            if self._closing:  # shutting down: nothing waits for a window's end
                plan = _now(items)
            else:
                plan, self.windows[who] = plan_storm(
                    items, self.windows.get(who), now, settings.group_window, settings.group_threshold
                )
            for item in plan.hold:
                await self.store.save_outbox_item(replace(item, next_attempt_at=plan.hold_until))
            if plan.group:
                group = grouped_item(plan.group, now)
                await self.store.enqueue([group])
                for item in plan.group:
                    member = replace(item, payload={**item.payload, "grouped_into": group.key})
                    await self.store.save_outbox_item(replace(member, status="delivered", delivered_at=now))
                log.warning(
                    "storm: %d incidents grouped into one page for @%s",
                    len(plan.group),
                    group.recipient,
                    extra={"channel": group.channel, "event_id": "storm_grouped"},
                )
            changed = changed or bool(plan.hold or plan.group)
        return changed

    # -- messages --------------------------------------------------------------------------

    def message(self, item: OutboxItem, now: float) -> Message:
        incidents = item.payload.get("incidents")
        if incidents is None:
            single = item.payload.get("incident")
            incidents = [single] if single is not None else []
        person = self.config.people.get(item.recipient)
        return Message(
            key=item.key,
            event=item.event,
            channel=item.channel,
            recipient=item.recipient,
            recipient_name=person.name if person else item.recipient,
            incidents=tuple(incidents),
            sent_at=now,
            links=self.links(incidents),
        )

    def links(self, incidents: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        base = (self.config.monitor.public_url or "").rstrip("/")
        if not base:
            return {}
        out = {"status_page": f"{base}/"}
        for inc in incidents:
            out[str(inc.get("id"))] = f"{base}/api/v1/incidents/{inc.get('id')}"
        return out

    # -- periodic re-posts -----------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-post open incidents to channels with `refresh_every` (Alertmanager)."""
        now = self.clock.now()
        due = [
            (name, ch, float(every))
            for name, ch in self.channels.items()
            if (every := getattr(ch, "refresh_every", None))
            and now >= self._next_refresh.setdefault(name, now + float(every))
        ]
        if not due or (self.fence is not None and not await self.fence()):
            return
        async with self._lock:
            incidents = [i.to_json() for i in await self.store.list_incidents("open", limit=10_000)]
            paged_by = {i["id"]: i["paged"] for i in incidents}
            for name, channel, every in due:
                self._next_refresh[name] = now + every
                mine = [i for i in incidents if any(name in self._notify(h) for h in paged_by[i["id"]])]
                if not mine:
                    continue
                message = Message(
                    key=f"refresh:{name}:{int(now)}",
                    event="refresh",
                    channel=name,
                    recipient="",
                    recipient_name="",
                    incidents=tuple(mine),
                    sent_at=now,
                    links=self.links(mine),
                )
                delivery = await channel.send(message, self.session)
                if not delivery.ok:
                    log.warning(
                        "re-posting %d open incidents failed: %s",
                        len(mine),
                        scrub(delivery.reason, self.secrets),
                        extra={"channel": name, "event_id": "refresh_failed"},
                    )

    def _notify(self, handle: str) -> tuple[str, ...]:
        person = self.config.people.get(handle)
        return person.notify if person else ()


def build_channels(config: Config) -> dict[str, Channel]:
    """Channel name -> a ready channel, from the registry."""
    registry = notify.load_all()
    return {name: registry[spec.type].factory(spec.params) for name, spec in config.channels.items()}


__all__ = ["Backoff", "OutboxWorker", "StormPlan", "StormWindow", "build_channels", "grouped_item", "plan_storm"]
