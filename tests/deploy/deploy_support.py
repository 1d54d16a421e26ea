"""Shared facts for the deploy tests: where things are, which metrics the engine exports
(SPEC.md §7 plus the documented extras), and a small PromQL reader that finds the
metric names, label names, functions and Grafana variables an expression uses.

The reader is deliberately lexical (no full PromQL grammar): promtool checks the syntax,
this checks the vocabulary against the metric contract.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
GRAFANA = REPO / "grafana"
RULES_FILE = DEPLOY / "prometheus" / "rules" / "monitor.rules.yml"
RULES_TEST_FILE = DEPLOY / "prometheus" / "tests" / "monitor.rules.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "provider.yml"
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
LOCK_FILE = DEPLOY / "requirements.lock"
BUILD_CONSTRAINTS_FILE = DEPLOY / "build-constraints.txt"

# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})


@dataclass(frozen=True)
class Family:
    kind: str  # gauge | counter | histogram
    labels: frozenset[str] = field(default_factory=frozenset)


def _f(kind: str, *labels: str) -> Family:
    return Family(kind, frozenset(labels))


# SPEC.md §7 (names and labels fixed) plus the extras the engine documents.
FAMILIES: dict[str, Family] = {
    "monitor_probe_success": _f("gauge", "site", "check"),
    "monitor_probe_duration_seconds": _f("histogram", "site", "check"),
    "monitor_probe_http_status_code": _f("gauge", "site", "check"),
    "monitor_probes_total": _f("counter", "site", "check", "result"),
    "monitor_tls_cert_expiry_timestamp_seconds": _f("gauge", "site", "check"),
    "monitor_condition_active": _f("gauge", "site", "condition", "severity"),
    "monitor_halt_active": _f("gauge", "condition"),
    "monitor_incidents_open": _f("gauge", "condition", "severity"),
    "monitor_incidents_opened_total": _f("counter", "condition", "severity"),
    "monitor_notifications_total": _f("counter", "channel", "outcome"),
    "monitor_notification_queue_depth": _f("gauge"),
    "monitor_schedule_lag_seconds": _f("histogram"),
    # extras
    "monitor_build_info": _f("gauge", "version"),
    "monitor_checks_configured": _f("gauge"),
    "monitor_site_maintenance": _f("gauge", "site"),
    "monitor_connectivity_ok": _f("gauge"),
    # Prometheus' own per-target series
    "up": _f("gauge"),
}


def series_labels() -> dict[str, frozenset[str]]:
    """Every series name a query may select, with the labels it carries."""
    out: dict[str, frozenset[str]] = {}
    for name, fam in FAMILIES.items():
        labels = fam.labels | TARGET_LABELS
        if fam.kind == "histogram":
            out[f"{name}_bucket"] = labels | {"le"}
            out[f"{name}_sum"] = labels
            out[f"{name}_count"] = labels
        else:
            out[name] = labels
    return out


SERIES = series_labels()

PROMQL_FUNCTIONS = frozenset(
    {
        "abs",
        "absent",
        "absent_over_time",
        "avg",
        "avg_over_time",
        "bottomk",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "count",
        "count_over_time",
        "count_values",
        "day_of_month",
        "day_of_week",
        "days_in_month",
        "delta",
        "deriv",
        "exp",
        "floor",
        "group",
        "histogram_quantile",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max",
        "max_over_time",
        "min",
        "min_over_time",
        "minute",
        "month",
        "predict_linear",
        "present_over_time",
        "quantile",
        "quantile_over_time",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sort",
        "sort_desc",
        "sqrt",
        "stddev",
        "stddev_over_time",
        "stdvar",
        "stdvar_over_time",
        "sum",
        "sum_over_time",
        "time",
        "timestamp",
        "topk",
        "vector",
        "year",
    }
)
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
    }
)
GRAFANA_BUILTINS = frozenset({"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"})

_STRING = r'"(?:[^"\\]|\\.)*"'
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(" + _STRING + ")")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class Usage:
    """What one PromQL expression refers to."""

    metrics: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    matchers: list[tuple[str | None, str, str, str]] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)


def promql_usage(expr: str) -> Usage:
    """Metric names, functions, label matchers, grouping labels and $variables in `expr`."""
    use = Usage(variables={a or b for a, b in _VARIABLE.findall(expr)})
    text = expr
    for match in _SELECTOR.finditer(expr):
        metric = match.group(1)
        for label, op, value in _MATCHER.findall(match.group(2)):
            use.matchers.append((metric, label, op, value[1:-1]))
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = re.sub(_STRING, " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for _, labels in _GROUPING.findall(text):
        use.grouping_labels |= {x.strip() for x in labels.split(",") if x.strip()}
    text = _GROUPING.sub(" ", text)
    for name, call in _IDENT.findall(text):
        if name.lower() in _KEYWORDS:
            continue
        (use.functions if call else use.metrics).add(name)
    return use


def vocabulary_errors(expr: str, variables: frozenset[str] = frozenset()) -> list[str]:
    """Everything in `expr` the engine does not export, as readable messages."""
    use = promql_usage(expr)
    errors = [f"unknown metric {m!r}" for m in sorted(use.metrics - SERIES.keys())]
    errors += [f"unknown function {f!r}" for f in sorted(use.functions - PROMQL_FUNCTIONS)]
    known = [SERIES[m] for m in use.metrics if m in SERIES]
    all_labels = frozenset().union(*known) if known else TARGET_LABELS
    for metric, label, _, _ in use.matchers:
        allowed = SERIES.get(metric, all_labels) if metric else all_labels
        if label not in allowed:
            errors.append(f"label {label!r} is not on {metric or 'the selected series'}")
    errors += [f"grouping by unknown label {x!r}" for x in sorted(use.grouping_labels - all_labels)]
    undefined = use.variables - variables - GRAFANA_BUILTINS
    errors += [f"undefined variable ${v}" for v in sorted(undefined)]
    return errors


def substitute_grafana(expr: str, values: dict[str, str] | None = None) -> str:
    """`expr` with Grafana's variables replaced, ready for Prometheus or promtool."""
    values = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", **(values or {})}
    values.setdefault("__range_s", "3600")
    values.setdefault("__range_ms", "3600000")
    values.setdefault("__interval_ms", "15000")
    return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), "x"), expr)


def which(name: str) -> str | None:
    return shutil.which(name)
