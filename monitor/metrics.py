"""Prometheus exposition built at scrape time from the engine's current state.

Counters and histograms are plain numbers the engine bumps (Telemetry); the
collector turns them and the live state into metric families on each scrape,
so a removed site disappears from /metrics by itself. Histograms use a short
bucket list on purpose: 10,000 checks x 9 buckets stays small and fast.

Replicas (cluster.py): a replica started with a region adds `region` to every
probe family; per-check gauges come only from the replica that probes the check;
the incident, halt, condition and notification families come only from the
leader, so sums over replicas in Prometheus count each incident once.
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
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from monitor import __version__
from monitor.results import Severity

if TYPE_CHECKING:
    from monitor.engine import Engine

PROBE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HELP = {  # shared by the collector and the direct writer below
    "monitor_probe_success": "1 if the last probe of the check passed",
    "monitor_probe_http_status_code": "HTTP status of the last probe",
    "monitor_tls_cert_expiry_timestamp_seconds": "When the served certificate expires",
    "monitor_probe_duration_seconds": "Probe duration",
    "monitor_probes_total": "Probes run, by result",
    "monitor_site_maintenance": "1 while the site is in a maintenance window or silenced",
}
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


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
    region: str | None = None  # a replica's region: an extra `region` label on the probe families

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
        yield from self._few()
        yield from self._maintenance()

    def _few(self) -> Iterator[Metric]:
        """The families whose size does not grow with the number of checks."""
        if self.engine.leading():  # followers would count the leader's incidents again
            yield from self._conditions()
            yield from self._incidents()
        yield from self._engine()

    def _probes(self) -> Iterator[Metric]:
        e, t = self.engine, self.engine.telemetry
        extra = [] if t.region is None else [t.region]
        names = ["site", "check"] + ([] if t.region is None else ["region"])
        success = GaugeMetricFamily("monitor_probe_success", HELP["monitor_probe_success"], labels=names)
        status = GaugeMetricFamily(
            "monitor_probe_http_status_code", HELP["monitor_probe_http_status_code"], labels=names
        )
        expiry = GaugeMetricFamily(
            "monitor_tls_cert_expiry_timestamp_seconds",
            HELP["monitor_tls_cert_expiry_timestamp_seconds"],
            labels=names,
        )
        for check in e.config.checks:
            view = e.views.get(check.key)
            if view is None or view.own is None or not e.should_probe(check):
                continue
            labels = [check.site, check.name, *extra]
            success.add_metric(labels, 1.0 if view.own.ok else 0.0)
            if view.own.status_code is not None:
                status.add_metric(labels, float(view.own.status_code))
            if view.own.cert_expires_at is not None:
                expiry.add_metric(labels, view.own.cert_expires_at)
        yield success
        yield status
        yield expiry
        duration = HistogramMetricFamily(
            "monitor_probe_duration_seconds", HELP["monitor_probe_duration_seconds"], labels=names
        )
        for (site, name), hist in t.durations.items():
            duration.add_metric([site, name, *extra], hist.buckets(), hist.total)
        yield duration
        total = CounterMetricFamily("monitor_probes_total", HELP["monitor_probes_total"], labels=[*names, "result"])
        for (site, name, result), count in t.probes.items():
            total.add_metric([site, name, *extra, result], float(count))
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

    def _maintenance(self) -> Iterator[Metric]:
        e = self.engine
        maintenance = GaugeMetricFamily("monitor_site_maintenance", HELP["monitor_site_maintenance"], labels=["site"])
        now = e.clock.now()
        for site in sorted(e.config.sites):
            maintenance.add_metric([site], 1.0 if e.is_silenced(site, now) else 0.0)
        yield maintenance


# -- the exposition text, written directly ---------------------------------------------------
#
# generate_latest() takes ~1.5 s for 10,000 checks (a Sample and a label dict per line, then
# sorting and escaping each) while the event loop stalls and probes start late. The families
# that grow with the number of checks are written here instead, byte for byte what the
# collector gives (tests hold the two equal); the small families still go through
# prometheus_client.


def exposition(collector: EngineCollector) -> bytes:
    """The /metrics body: generate_latest(collector), but fast for 10,000 checks."""
    e = collector.engine
    out: list[str] = []
    _write_probes(e, out)
    out.append(generate_latest(_Few(collector)).decode())
    _write_maintenance(e, out)
    return "".join(out).encode()


class _Few:
    def __init__(self, collector: EngineCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        return self.collector._few()


def _value(v: float) -> str:
    """floatToGoString(v), with a fast path for the common small whole numbers."""
    return f"{v}.0" if type(v) is int and 0 <= v < 1_000_000 else _go(v)


def _go(v: float) -> str:
    return str(floatToGoString(v))  # type: ignore[no-untyped-call]


def _esc(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v


def _head(out: list[str], name: str, kind: str) -> None:
    out.append(f"# HELP {name} {HELP[name]}\n# TYPE {name} {kind}\n")


def _region(t: Telemetry) -> str:
    """The `region` label and its comma, in sorted label order (after check, le and result)."""
    return "" if t.region is None else f'region="{_esc(t.region)}",'


def _write_probes(e: Engine, out: list[str]) -> None:
    success: list[str] = []
    status: list[str] = []
    expiry: list[str] = []
    region = _region(e.telemetry)
    for check in e.config.checks:
        view = e.views.get(check.key)
        if view is None or view.own is None or not e.should_probe(check):
            continue
        last = view.own
        labels = f'{{check="{_esc(check.name)}",{region}site="{_esc(check.site)}"}} '
        success.append(f"monitor_probe_success{labels}{'0.0' if last.problems else '1.0'}\n")
        if last.status_code is not None:
            status.append(f"monitor_probe_http_status_code{labels}{_value(last.status_code)}\n")
        if last.cert_expires_at is not None:
            expiry.append(f"monitor_tls_cert_expiry_timestamp_seconds{labels}{_value(last.cert_expires_at)}\n")
    for name, lines in (
        ("monitor_probe_success", success),
        ("monitor_probe_http_status_code", status),
        ("monitor_tls_cert_expiry_timestamp_seconds", expiry),
    ):
        _head(out, name, "gauge")
        out.extend(lines)
    _write_durations(e.telemetry, out)
    _head(out, "monitor_probes_total", "counter")
    for (site, name, result), count in e.telemetry.probes.items():
        labels = f'{{check="{_esc(name)}",{region}result="{_esc(result)}",site="{_esc(site)}"}} '
        out.append(f"monitor_probes_total{labels}{_value(count)}\n")


def _write_durations(t: Telemetry, out: list[str]) -> None:
    _head(out, "monitor_probe_duration_seconds", "histogram")
    region = _region(t)
    les = [f'",le="{le}",{region}site="' for le in (*map(repr, PROBE_BUCKETS), "+Inf")]
    for (site, name), hist in t.durations.items():
        c, s = _esc(name), _esc(site)
        running = 0
        for le, count in zip(les, hist.counts, strict=True):
            running += count
            out.append(f'monitor_probe_duration_seconds_bucket{{check="{c}{le}{s}"}} {_value(running)}\n')
        labels = f'{{check="{c}",{region}site="{s}"}} '
        out.append(f"monitor_probe_duration_seconds_count{labels}{_value(running)}\n")
        out.append(f"monitor_probe_duration_seconds_sum{labels}{_go(hist.total)}\n")


def _write_maintenance(e: Engine, out: list[str]) -> None:
    _head(out, "monitor_site_maintenance", "gauge")
    now = e.clock.now()
    for site in sorted(e.config.sites):
        value = "1.0" if e.is_silenced(site, now) else "0.0"
        out.append(f'monitor_site_maintenance{{site="{_esc(site)}"}} {value}\n')
