"""The engine wires the flow: scheduler -> probes -> rules -> incidents -> reports, halt, pages.

Decisions are made by pure functions (rules.evaluate, incidents.lifecycle,
notify.planner, halt.compute); this module does the I/O around them and keeps
the live view the API and /metrics read. Incident changes are serialised by one
lock, and each change is written to the store together with the notifications
it causes before anything else (report, chatroom, HALT file) happens.
"""

from __future__ import annotations

import asyncio
import logging
import secrets as pysecrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from monitor import probes
from monitor.clock import Clock, SystemClock, rfc3339
from monitor.conditions import API_FAILURE, MONITOR_OFFLINE
from monitor.config import Check, Config
from monitor.errors import StoreError
from monitor.halt import HaltState, compute, write_halt_file
from monitor.incidents import lifecycle
from monitor.incidents.model import Incident, Status, incident_id
from monitor.incidents.report import Reports
from monitor.maintenance import GLOBAL, Maintenance, Silence, silence_duration
from monitor.metrics import Telemetry
from monitor.notify import planner
from monitor.notify.outbox import OutboxWorker
from monitor.probes import ProbeContext
from monitor.probes._http import trace_config
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.rules import Changed, Flap, FlapChanged, Recovered, Track, Tripped, blind, connectivity_ok, evaluate, flap
from monitor.store import OutboxItem, Override, Store, StoreConflict
from monitor.views import CheckView, StoreProbeState

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between escalation / override / outbox-depth checks
CHANGE_ATTEMPTS = 10  # re-reads of an incident another replica keeps changing before giving up


class Engine:
    def __init__(self, config: Config, store: Store, *, clock: Clock | None = None) -> None:
        self.config = config
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.telemetry = Telemetry()
        self.reports = Reports(config.workspace)
        self.views: dict[str, CheckView] = {c.key: CheckView(c) for c in config.checks}
        self.tracks: dict[str, dict[str, Track]] = {}
        self.open: dict[str, Incident] = {}
        self.overrides: list[Override] = []
        self.halt = HaltState(False, (), (), None, None)
        self.ready = False
        self.session: aiohttp.ClientSession | None = None
        self.lock = asyncio.Lock()
        self.background: list[asyncio.Task[None]] = []
        self.on_change: list[Callable[[], None]] = []  # e.g. wake the outbox worker
        self.maintenance = Maintenance(config.maintenance)
        self.is_silenced: Callable[[str, float], bool] = self.maintenance.is_silenced
        self.outbox: OutboxWorker | None = None
        self.recently_cleared: set[tuple[str, str]] = set()
        self.suppressed: dict[tuple[str, str], Tripped] = {}  # (check key, condition) tripped in maintenance
        self._stopping = asyncio.Event()
        self._scheduler: Any = None
        # Replicas (cluster.py) hook in here; alone, every check is ours and results are handled here.
        self.should_probe: Callable[[Check], bool] = lambda _check: True
        self.result_sink: Callable[[Check, ProbeResult], Awaitable[None]] | None = None
        self.before_tick: Callable[[], Awaitable[bool]] | None = None
        self.leading: Callable[[], bool] = lambda: True  # False: a follower; /metrics omits incident families
        self.flaps: dict[str, dict[str, Flap]] = {}  # per check: recent outcomes per condition (rules.flap)
        self.connectivity_ok = True  # False while every monitor.canaries target is unreachable
        probes.load_all()

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, *, schedule: bool = True) -> None:
        """Open the store, restore state, reconcile reports, then start probing."""
        await self.store.open()
        for key, doc in (await self.store.load_check_states()).items():
            if key in self.views:
                self.tracks[key] = {c: Track.from_json(t) for c, t in doc.items()}
        for incident in await self.store.list_incidents("open", limit=100_000):
            self.open[incident.id] = incident
        self.overrides = await self.store.list_overrides()
        stored = await self.store.get_probe_state("maintenance", "silences") or []
        self.maintenance.silences = [Silence.from_record(s) for s in stored]
        self.telemetry.queue_depth = await self.store.outbox_depth()
        await self._reconcile()
        self.session = self.new_session()
        self.ready = True
        self.background.append(asyncio.create_task(self._ticker(), name="ticker"))
        self.outbox = OutboxWorker(self.store, self.config, self.clock, self.session, self.telemetry)
        self.on_change.append(self.outbox.wake)
        self.background.append(asyncio.create_task(self.outbox.run(), name="outbox"))
        if schedule:
            from monitor.scheduler import Scheduler

            self._scheduler = Scheduler(
                self.config.checks,
                self.probe_once,
                clock=self.clock,
                max_concurrency=self.config.monitor.max_concurrency,
                on_lag=self.telemetry.lag.observe,
                should_run=lambda check: self.should_probe(check),
            )
            self._scheduler.start()
            if self.config.monitor.canaries:
                self.background.append(asyncio.create_task(self._canary_loop(), name="canaries"))
        log.info("engine started", extra={"event_id": "started"})

    def new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.config.monitor.max_concurrency,
            ttl_dns_cache=60,
            enable_cleanup_closed=True,
        )
        return aiohttp.ClientSession(
            connector=connector,
            trace_configs=[trace_config()],
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "monitor/0.1 (+health-check)"},
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def stop(self) -> None:
        """Stop probing, let in-flight incident work finish, close the session and store."""
        self._stopping.set()
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self.outbox is not None:  # SIGTERM: flush for a bounded time; the rest waits in the store
            await self.outbox.drain(self.config.notifications.drain_timeout)
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        self.background.clear()
        async with self.lock:
            if self.session is not None:
                await self.session.close()
            await self.store.close()
        self.ready = False

    async def _reconcile(self) -> None:
        """After a restart: rewrite reports of open incidents, post what a crash left unposted."""
        for incident in list(self.open.values()):
            await self._publish(incident)
        await self._refresh_halt(force=True)

    # -- probing ---------------------------------------------------------------------------

    async def probe_once(self, check: Check) -> ProbeResult:
        """Run one probe of `check` and feed the result through the rules."""
        result = await self.run_probe(check)
        if self.result_sink is not None:
            await self.result_sink(check, result)
        else:
            await self.handle_result(check, result)
        return result

    async def run_probe(self, check: Check) -> ProbeResult:
        assert self.session is not None
        ctx = ProbeContext(
            site=check.site,
            check=check.name,
            timeout=check.timeout,
            session=self.session,
            clock=self.clock,
            state=StoreProbeState(self.store, check.key),
        )
        probe = probes.PROBES[check.type]
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(check.timeout + 5):
                return await probe.run(check.params, ctx)
        except TimeoutError:
            problem = Problem(
                condition=API_FAILURE, kind=FailureKind.TIMEOUT, summary=f"{check.name} probe overran its timeout"
            )
        except Exception as exc:
            log.exception("probe raised", extra={"site": check.site, "check": check.name})
            problem = Problem(
                condition=API_FAILURE,
                kind=FailureKind.ERROR,
                summary=f"{check.name} probe failed ({type(exc).__name__})",
            )
        return ProbeResult(duration=loop.time() - start, problems=(problem,), detail=problem.summary)

    def observe(self, check: Check, result: ProbeResult, now: float) -> None:
        """Show a result on the status page and in the probe metrics."""
        view = self.views.setdefault(check.key, CheckView(check))
        view.last = view.own = result
        view.last_at = now
        view.history.append((now, result.ok))
        self.telemetry.probe(check.site, check.name, result.result_label, result.duration)

    async def handle_result(self, check: Check, result: ProbeResult, *, observe: bool = True) -> None:
        """Record a result (from the scheduler, a webhook, or a test) and act on transitions.
        `observe=False`: the leader handling a result another replica already showed and counted."""
        now = self.clock.now()
        if observe:
            self.observe(check, result, now)
        if blind(result, self.connectivity_ok):
            return  # we are offline: an unreachable target says nothing about the target (monitor_offline)
        before = self.tracks.get(check.key, {})
        flaps, flap_events = flap(self.flaps.get(check.key, {}), result, check, before)
        self.flaps[check.key] = flaps
        holding = frozenset(c for c, f in flaps.items() if f.flapping)
        after, transitions = evaluate(before, result, check, self.config.conditions, holding=holding)
        self.tracks[check.key] = after
        if after != before:
            await self.store.save_check_state(check.key, {c: t.to_json() for c, t in after.items()})
        for event in flap_events:  # settling is noted before the recovery it allows
            if not event.flapping:
                async with self.lock:
                    await self._flap_note(check, event, now)
        for transition in transitions:
            async with self.lock:
                if isinstance(transition, Tripped):
                    await self._tripped(check, transition, now)
                elif isinstance(transition, Changed):
                    await self._changed(check, transition, now)
                elif isinstance(transition, Recovered):
                    await self._recovered(check, transition, now)
        for event in flap_events:  # flapping is noted after a trip it coincides with
            if event.flapping:
                async with self.lock:
                    await self._flap_note(check, event, now)

    async def _flap_note(self, check: Check, event: FlapChanged, now: float) -> None:
        """Flapping starts or stops: a timeline note on the open incident, never a page."""
        what = "flapping" if event.flapping else "stable"
        then = "the incident stays open until it settles" if event.flapping else "it may recover again"
        detail = f"{check.name}: {event.changes} state changes in the last {event.window} probes; {then}"
        log.warning("%s: %s", what, detail, extra={"site": check.site, "check": check.name, "event_id": what})
        existing = self._find_open(check.site, event.condition)
        if existing is not None:
            await self._change(existing, lambda i: lifecycle.add_event(i, now, what, detail) if i.is_open else None)

    # -- the prober's own connectivity (monitor.canaries) ----------------------------------

    async def check_canaries(self) -> bool:
        """Reach every canary once; offline when none answers. Trips and recovers monitor_offline."""
        urls = self.config.monitor.canaries
        if not urls:
            return True
        reached = await asyncio.gather(*(self._reach(url) for url in urls))
        online = connectivity_ok(reached)
        if not online and self.connectivity_ok:
            log.error("prober offline: no canary answers", extra={"event_id": "offline"})
        elif online and not self.connectivity_ok:
            log.warning("prober back online", extra={"event_id": "online"})
        self.connectivity_ok = online
        d = self.config.defaults
        check = Check(
            site="_monitor",
            client="",
            name="canaries",
            type="http",
            params=None,
            interval=float(d.interval),
            timeout=float(d.timeout),
            failure_threshold=d.failure_threshold,
            success_threshold=d.success_threshold,
        )
        problem = Problem(
            condition=MONITOR_OFFLINE,
            kind=FailureKind.REFUSED,
            summary=f"the prober reaches none of its {len(urls)} canaries; unreachable sites are not judged",
        )
        await self.handle_result(check, ProbeResult(duration=0.0, problems=() if online else (problem,)))
        return online

    async def _reach(self, url: str) -> bool:
        assert self.session is not None
        try:
            async with asyncio.timeout(self.config.defaults.timeout):
                async with self.session.get(url, allow_redirects=False):
                    return True  # any HTTP answer: the network works
        except Exception:  # every failure means "not reached"
            return False

    async def _canary_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.check_canaries()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("canary check failed")
            await self.clock.sleep(self.config.defaults.interval)

    def _find_open(self, site: str, condition: str) -> Incident | None:
        return next((i for i in self.open.values() if i.site == site and i.condition == condition), None)

    async def _tripped(self, check: Check, t: Tripped, now: float) -> None:
        log.warning(
            "condition tripped: %s",
            t.problem.summary,
            extra={"site": check.site, "check": check.name, "condition": t.condition, "severity": t.severity.value},
        )
        existing = self._find_open(check.site, t.condition)
        if existing is not None:
            await self._change(existing, _joining(check.name, t.problem, t.severity, now))
            return
        if self.is_silenced(check.site, now):
            log.info("maintenance: no incident opened", extra={"site": check.site, "condition": t.condition})
            self.suppressed[(check.key, t.condition)] = t  # opens when maintenance ends, if still failing
            return
        await self.open_incident(check, t.condition, t.severity, t.problem, t.streak, now)

    async def open_incident(
        self, check: Check, condition: str, severity: Severity, problem: Problem, streak: int, now: float
    ) -> Incident:
        policy = self.config.conditions[condition]
        day = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
        number = await self.store.reserve_incident_number(day)
        incident = lifecycle.open_incident(
            incident_id=incident_id(day, severity, number),
            site=check.site,
            client=check.client,
            check=check.name,
            policy=policy,
            severity=severity,
            problem=problem,
            streak=streak,
            now=now,
        )
        incident, outbox = planner.on_open(incident, policy, self.config, now)
        if not await self.store.create_incident(incident, outbox):
            # Someone else (another replica, or us before a crash) opened it first: join that one.
            found = await self.store.find_open_incident(check.site, condition)
            assert found is not None
            return await self._change(found, _joining(check.name, problem, severity, now)) or found
        incident = replace(incident, version=1)  # create_incident stores version 1
        self.telemetry.incidents_opened[(condition, severity.value)] += 1
        await self._show(incident)
        log.error(
            "incident opened: %s",
            incident.description,
            extra={"incident": incident.id, "site": check.site, "condition": condition, "severity": severity.value},
        )
        await self._after_change(incident)
        return incident

    async def _changed(self, check: Check, t: Changed, now: float) -> None:
        existing = self._find_open(check.site, t.condition)
        if existing is not None:
            await self._change(existing, _joining(check.name, t.problem, t.severity, now))

    async def _recovered(self, check: Check, t: Recovered, now: float) -> None:
        self.recently_cleared.add((check.site, t.condition))
        existing = self._find_open(check.site, t.condition)
        if existing is None:
            return
        still = any(
            key != check.key and key.startswith(f"{check.site}/") and tracks.get(t.condition, Track()).active
            for key, tracks in self.tracks.items()
        )

        def recover(current: Incident) -> Change:
            if not current.is_open:
                return None  # resolved meanwhile (by a person, or on another replica)
            incident = lifecycle.recover(current, check=check.name, streak=t.streak, still_failing=still, now=now)
            return planner.on_resolved(incident, self.config, now) if incident.status is Status.RESOLVED else incident

        await self._change(existing, recover)

    # -- people ----------------------------------------------------------------------------

    async def acknowledge(self, incident_id: str, by: str) -> Incident:
        async with self.lock:
            incident = await self._get_for_change(incident_id)
            now = self.clock.now()

            def ack(current: Incident) -> Change:
                acked = lifecycle.acknowledge(current, by=by, now=now)
                if current.status is Status.INVESTIGATING:
                    return planner.on_acknowledged(acked, self.config, now)
                return acked

            return await self._change(incident, ack) or incident

    async def resolve(self, incident_id: str, by: str, note: str) -> Incident:
        async with self.lock:
            incident = await self._get_for_change(incident_id)
            now = self.clock.now()

            def resolve(current: Incident) -> Change:
                return planner.on_resolved(lifecycle.resolve(current, by=by, note=note, now=now), self.config, now)

            return await self._change(incident, resolve) or incident

    async def annotate(self, incident_id: str, by: str, note: str) -> Incident:
        async with self.lock:
            incident = await self._get_for_change(incident_id)
            now = self.clock.now()
            return await self._change(incident, lambda i: lifecycle.annotate(i, by=by, note=note, now=now)) or incident

    async def lift_halt(self, *, reason: str, until: float, by: str) -> Override:
        """The owner's override: lift the halt for the incidents halting now, until `until`."""
        async with self.lock:
            now = self.clock.now()
            override = Override(
                id=f"override-{int(now)}-{pysecrets.token_hex(3)}",
                action="lift_halt",
                reason=reason,
                by=by,
                created_at=now,
                until=until,
                incident_ids=self.halt.incidents,
            )
            await self.store.save_override(override)
            self.overrides.insert(0, override)
            detail = f"halt lifted until {_iso(until)}: {reason}"
            for iid in override.incident_ids:
                incident = self.open.get(iid)
                if incident is not None:
                    await self._change(incident, lambda i: lifecycle.add_event(i, now, "override", detail, by))
            await self._refresh_halt()
            return override

    async def cancel_override(self, *, by: str) -> Override | None:
        async with self.lock:
            now = self.clock.now()
            active = next((o for o in self.overrides if o.active(now)), None)
            if active is None:
                return None
            revoked = replace(active, revoked_at=now)
            await self.store.save_override(revoked)
            self.overrides = [revoked if o.id == active.id else o for o in self.overrides]
            for iid in active.incident_ids:
                incident = self.open.get(iid)
                if incident is not None:
                    await self._change(
                        incident, lambda i: lifecycle.add_event(i, now, "override_cancelled", "halt restored", by)
                    )
            await self._refresh_halt()
            return revoked

    async def silence_site(self, site: str, by: str, reason: str, duration: float | str) -> dict[str, Any]:
        """Put `site` ("*": every site) in maintenance for `duration` (seconds or "2h"), durably.

        KeyError for an unknown site, ValueError for a duration outside (0, 7d].
        """
        if site != GLOBAL and site not in self.config.sites:
            raise KeyError(site)
        seconds = silence_duration(duration)
        async with self.lock:
            now = self.clock.now()
            silence = Silence(
                id=f"silence-{int(now)}-{pysecrets.token_hex(3)}",
                site=site,
                by=by,
                reason=reason,
                created_at=now,
                until=now + seconds,
            )
            await self._save_silences([*self.maintenance.prune(now), silence])
            detail = f"maintenance until {_iso(silence.until)}: {reason}"
            for incident in [i for i in self.open.values() if silence.covers(i.site)]:
                await self._change(incident, lambda i: lifecycle.add_event(i, now, "silenced", detail, by))
        log.warning("maintenance: %s silenced by %s", site, by, extra={"site": site, "event_id": "silenced"})
        return silence.to_json()

    async def unsilence_site(self, site: str, by: str) -> list[dict[str, Any]]:
        """End `site`'s runtime silences now; returns the ended ones (configured windows stay)."""
        async with self.lock:
            now = self.clock.now()
            live = self.maintenance.prune(now)
            ended = [replace(s, until=now) for s in live if s.site == site]
            await self._save_silences([s for s in live if s.site != site])
        if ended:
            log.warning("maintenance: %s unsilenced by %s", site, by, extra={"site": site, "event_id": "unsilenced"})
        return [s.to_json() for s in ended]

    def maintenance_view(self) -> dict[str, Any]:
        """Which sites are in maintenance now and why, plus the live silences."""
        now = self.clock.now()
        why = {site: self.maintenance.why(site, now) for site in self.config.sites}
        live = [s.to_json() for s in self.maintenance.silences or () if s.active(now)]
        return {"sites": {site: reason for site, reason in why.items() if reason}, "silences": live}

    async def _save_silences(self, silences: list[Silence]) -> None:
        await self.store.put_probe_state("maintenance", "silences", [s.to_record() for s in silences])
        self.maintenance.silences = silences

    async def _get_for_change(self, incident_id: str) -> Incident:
        # The store first: with replicas, another one may have changed it since we last looked.
        incident = await self.store.get_incident(incident_id) or self.open.get(incident_id)
        if incident is None:
            raise KeyError(incident_id)
        return incident

    # -- persistence and side effects ------------------------------------------------------

    async def _change(self, incident: Incident, change: Callable[[Incident], Change]) -> Incident | None:
        """Save change(incident). When another replica changed the incident since it was read
        (StoreConflict), re-read it and apply `change` again, so neither change is lost (an ack
        on a follower racing an escalation on the leader). None when `change` has nothing to do."""
        for attempt in range(CHANGE_ATTEMPTS):
            planned = change(incident)
            if planned is None:
                if attempt:
                    await self._show(incident)  # nothing to do on the re-read one; show it as it is
                return None
            new, outbox = planned if isinstance(planned, tuple) else (planned, ())
            try:
                return await self._save(new, outbox)
            except StoreConflict:
                latest = await self.store.get_incident(incident.id)
                if latest is None:
                    raise
                log.info("incident changed elsewhere; re-applying", extra={"incident": incident.id})
                incident = latest
        raise StoreError(f"incident {incident.id}: gave up after {CHANGE_ATTEMPTS} conflicting writes")

    async def _save(self, incident: Incident, outbox: Sequence[OutboxItem] = ()) -> Incident:
        incident = await self.store.update_incident(incident, outbox)
        await self._show(incident)
        if not incident.is_open:
            log.warning("incident resolved", extra={"incident": incident.id, "site": incident.site})
        await self._after_change(incident)
        return self.open.get(incident.id, incident)

    async def _show(self, incident: Incident) -> None:
        """Make a stored change visible: the HALT file first, then the view the API reads, so
        whoever sees a halting incident through the API can rely on .tmp/HALT already existing."""
        view = dict(self.open)
        if incident.is_open:
            view[incident.id] = incident
        else:
            view.pop(incident.id, None)
        await self._refresh_halt(view)
        self.open = view

    async def _after_change(self, incident: Incident) -> None:
        await self._publish(incident)
        for callback in self.on_change:
            callback()

    async def _publish(self, incident: Incident) -> None:
        """Write the report file and, once per status, the chatroom post."""
        posted_key = incident.status.value
        try:
            await asyncio.to_thread(self.reports.write, incident)
            if posted_key not in incident.posted:
                await asyncio.to_thread(self.reports.post, incident)
                marked = await self._mark_posted(incident, posted_key)
                if marked.is_open and marked.id in self.open:
                    self.open[marked.id] = marked
        except OSError:
            log.exception("cannot write incident report", extra={"incident": incident.id})

    async def _mark_posted(self, incident: Incident, key: str) -> Incident:
        """Record the chatroom post; on a conflict, on the incident as it is now."""
        for _ in range(CHANGE_ATTEMPTS):
            if key in incident.posted:
                return incident
            try:
                return await self.store.update_incident(replace(incident, posted=(*incident.posted, key)))
            except StoreConflict:
                incident = await self.store.get_incident(incident.id) or incident
        return incident

    async def _refresh_halt(self, open_incidents: dict[str, Incident] | None = None, *, force: bool = False) -> None:
        """Recompute the halt; log and rewrite .tmp/HALT only when it changed (or `force`)."""
        incidents = self.open if open_incidents is None else open_incidents
        state = compute(list(incidents.values()), self.overrides, self.clock.now())
        changed = (state.halted, state.incidents) != (self.halt.halted, self.halt.incidents)
        self.halt = state
        if changed:
            if state.halted:
                log.error("HALT: %s", ", ".join(state.conditions), extra={"event_id": "halt"})
            else:
                log.warning("halt cleared", extra={"event_id": "halt_cleared"})
        if not (changed or force):
            return
        try:
            await asyncio.to_thread(write_halt_file, self.config.workspace, state)
        except OSError:
            log.exception("cannot write the HALT file")

    async def _ticker(self) -> None:
        """Escalations, reminders, override expiry and outbox depth, once a second."""
        while not self._stopping.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ticker error")
            await self.clock.sleep(TICK)

    async def tick(self) -> None:
        if self.before_tick is not None and not await self.before_tick():
            return  # a follower replica: the leader runs escalations
        now = self.clock.now()
        async with self.lock:
            for incident in list(self.open.values()):
                policy = self.config.conditions.get(incident.condition)
                if policy is None or self.is_silenced(incident.site, now):  # maintenance: no escalation
                    continue
                await self._change(incident, _ticking(policy, self.config, now))
            await self._after_maintenance(now)
            await self._refresh_halt()
        self.telemetry.queue_depth = await self.store.outbox_depth()

    async def _after_maintenance(self, now: float) -> None:
        """Conditions that tripped during maintenance and still fail open their incident when it ends."""
        for (key, condition), tripped in list(self.suppressed.items()):
            check = self.config.check_by_key(key)
            track = self.tracks.get(key, {}).get(condition)
            if check is None or track is None or not track.active:
                del self.suppressed[(key, condition)]
            elif not self.is_silenced(check.site, now):
                del self.suppressed[(key, condition)]
                await self._tripped(check, tripped, now)

    # -- views -----------------------------------------------------------------------------

    def open_incidents(self) -> list[Incident]:
        return sorted(self.open.values(), key=lambda i: (i.severity.rank, i.opened_at))

    def condition_states(self) -> dict[tuple[str, str], Severity | None]:
        """(site, condition) -> severity while active, None when it was active and cleared."""
        out: dict[tuple[str, str], Severity | None] = dict.fromkeys(self.recently_cleared)
        for key, tracks in self.tracks.items():
            site = key.split("/", 1)[0]
            for condition, track in tracks.items():
                if track.active:
                    prev = out.get((site, condition))
                    sev = track.severity or Severity.SEV3
                    out[(site, condition)] = sev if prev is None else Severity.worst(prev, sev)
        return out

    def status(self) -> dict[str, Any]:
        sites: dict[str, dict[str, Any]] = {}
        for check in self.config.checks:
            site = sites.setdefault(
                check.site, {"name": check.site, "client": check.client, "state": "up", "checks": []}
            )
            view = self.views[check.key].to_json(self.tracks.get(check.key, {}))
            site["checks"].append(view)
        order = {"down": 0, "failing": 1, "pending": 2, "up": 3}
        for site in sites.values():
            site["state"] = min((c["state"] for c in site["checks"]), key=order.__getitem__, default="up")
            site["open_incidents"] = [i.id for i in self.open.values() if i.site == site["name"]]
        return {
            "halted": self.halt.halted,
            "sites": list(sites.values()),
            "open_incidents": [i.to_json() for i in self.open_incidents()],
        }

    @property
    def workspace(self) -> Path:
        return self.config.workspace


Change = Incident | tuple[Incident, Sequence[OutboxItem]] | None  # what a change to an incident yields


def _joining(check: str, problem: Problem, severity: Severity, now: float) -> Callable[[Incident], Change]:
    return lambda i: lifecycle.join(i, check=check, problem=problem, severity=severity, now=now) if i.is_open else None


def _ticking(policy: Any, config: Config, now: float) -> Callable[[Incident], Change]:
    return lambda i: planner.on_tick(i, policy, config, now) if i.is_open else None


def _iso(ts: float) -> str:
    return rfc3339(ts) or ""
