"""Prometheus exposition built at scrape time from the engine's current state.

Counters and histograms are plain numbers the engine bumps (Telemetry); the
collector turns them and the live state into metric families on each scrape,
so a removed site disappears from /metrics by itself. Histograms use a short
bucket list on purpose: 10,000 checks x 9 buckets stays small and fast.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.results import Severity

if TYPE_CHECKING:
    from monitor.engine import Engine

PROBE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


@dataclass(slots=True)
class Hist:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


@dataclass(slots=True)
class Telemetry:
    """Mutable runtime counters. Owned by the engine; never stored on config objects."""

    probes: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    durations: dict[tuple[str, str], Hist] = field(default_factory=dict)
    lag: Hist = field(default_factory=lambda: Hist(LAG_BUCKETS))
    incidents_opened: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    notifications: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    queue_depth: int = 0

    def probe(self, site: str, check: str, result: str, duration: float) -> None:
        self.probes[(site, check, result)] += 1
        hist = self.durations.get((site, check))
        if hist is None:
            hist = self.durations[(site, check)] = Hist(PROBE_BUCKETS)
        hist.observe(duration)

    def notification(self, channel: str, outcome: str) -> None:
        self.notifications[(channel, outcome)] += 1


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        yield from self._probes()
        yield from self._conditions()
        yield from self._incidents()
        yield from self._engine()

    def _probes(self) -> Iterator[Metric]:
        e, t = self.engine, self.engine.telemetry
        success = GaugeMetricFamily(
            "monitor_probe_success", "1 if the last probe of the check passed", labels=["site", "check"]
        )
        status = GaugeMetricFamily(
            "monitor_probe_http_status_code", "HTTP status of the last probe", labels=["site", "check"]
        )
        expiry = GaugeMetricFamily(
            "monitor_tls_cert_expiry_timestamp_seconds", "When the served certificate expires", labels=["site", "check"]
        )
        for check in e.config.checks:
            view = e.views.get(check.key)
            if view is None or view.last is None:
                continue
            labels = [check.site, check.name]
            success.add_metric(labels, 1.0 if view.last.ok else 0.0)
            if view.last.status_code is not None:
                status.add_metric(labels, float(view.last.status_code))
            if view.last.cert_expires_at is not None:
                expiry.add_metric(labels, view.last.cert_expires_at)
        yield success
        yield status
        yield expiry
        duration = HistogramMetricFamily("monitor_probe_duration_seconds", "Probe duration", labels=["site", "check"])
        for (site, name), hist in t.durations.items():
            duration.add_metric([site, name], hist.buckets(), hist.total)
        yield duration
        total = CounterMetricFamily("monitor_probes_total", "Probes run, by result", labels=["site", "check", "result"])
        for (site, name, result), count in t.probes.items():
            total.add_metric([site, name, result], float(count))
        yield total

    def _conditions(self) -> Iterator[Metric]:
        e = self.engine
        active = GaugeMetricFamily(
            "monitor_condition_active",
            "1 while the condition is tripped for the site",
            labels=["site", "condition", "severity"],
        )
        for (site, condition), severity in sorted(e.condition_states().items()):
            active.add_metric([site, condition, severity.value if severity else ""], 0.0 if severity is None else 1.0)
        yield active
        halt = GaugeMetricFamily("monitor_halt_active", "1 while a halt condition halts work", labels=["condition"])
        halting = set(e.halt.conditions)
        for name, policy in sorted(e.config.conditions.items()):
            if policy.halt:
                halt.add_metric([name], 1.0 if name in halting else 0.0)
        yield halt

    def _incidents(self) -> Iterator[Metric]:
        e, t = self.engine, self.engine.telemetry
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for incident in e.open_incidents():
            counts[(incident.condition, incident.severity.value)] += 1
        open_ = GaugeMetricFamily("monitor_incidents_open", "Open incidents", labels=["condition", "severity"])
        for name in sorted(e.config.conditions):
            for sev in Severity:
                open_.add_metric([name, sev.value], float(counts.get((name, sev.value), 0)))
        yield open_
        opened = CounterMetricFamily(
            "monitor_incidents_opened_total", "Incidents opened", labels=["condition", "severity"]
        )
        for (condition, severity), count in sorted(t.incidents_opened.items()):
            opened.add_metric([condition, severity], float(count))
        yield opened
        sent = CounterMetricFamily(
            "monitor_notifications_total", "Notification attempts by outcome", labels=["channel", "outcome"]
        )
        for (channel, outcome), count in sorted(t.notifications.items()):
            sent.add_metric([channel, outcome], float(count))
        yield sent
        yield GaugeMetricFamily(
            "monitor_notification_queue_depth", "Notifications waiting in the outbox", value=float(t.queue_depth)
        )

    def _engine(self) -> Iterator[Metric]:
        e, t = self.engine, self.engine.telemetry
        lag = HistogramMetricFamily("monitor_schedule_lag_seconds", "How late probes start against their schedule")
        lag.add_metric([], t.lag.buckets(), t.lag.total)
        yield lag
        info = GaugeMetricFamily("monitor_build_info", "Build information", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info
        yield GaugeMetricFamily(
            "monitor_checks_configured", "Checks in the loaded config", value=float(len(e.config.checks))
        )
        yield GaugeMetricFamily(
            "monitor_connectivity_ok",
            "0 while every monitor.canaries target is unreachable (the prober is offline)",
            value=1.0 if e.connectivity_ok else 0.0,
        )
        flapping = GaugeMetricFamily(
            "monitor_check_flapping", "1 while the check flaps on the condition", labels=["site", "check", "condition"]
        )
        for key, flaps in sorted(e.flaps.items()):
            site, _, name = key.partition("/")
            for condition, f in sorted(flaps.items()):
                if f.flapping:
                    flapping.add_metric([site, name, condition], 1.0)
        yield flapping
        maintenance = GaugeMetricFamily(
            "monitor_site_maintenance", "1 while the site is in a maintenance window or silenced", labels=["site"]
        )
        now = e.clock.now()
        for site in sorted(e.config.sites):
            maintenance.add_metric([site], 1.0 if e.is_silenced(site, now) else 0.0)
        yield maintenance
