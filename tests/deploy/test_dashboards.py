"""The Grafana dashboards and provisioning: loadable, wired to the provisioned datasource,
and asking only for metrics the engine exports (SPEC.md §7)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    COMPOSE_FILE,
    DASHBOARD_PROVIDER_FILE,
    DASHBOARDS,
    DATASOURCES_FILE,
    promql_usage,
    substitute_grafana,
    vocabulary_errors,
    which,
)

Panel = dict[str, Any]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> Iterator[Panel]:
    """Every non-row panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target.get('refId')}", target["expr"]
    for name, var in variables(dashboard).items():
        if var.get("type") == "query":
            yield f"variable {name}", variable_query(var)


def variable_query(var: dict[str, Any]) -> str:
    query = var["query"]
    return query["query"] if isinstance(query, dict) else query


def label_values_selector(query: str) -> tuple[str, str]:
    """label_values(selector, label) -> (selector, label)."""
    inner = query.strip().removeprefix("label_values(").removesuffix(")")
    selector, _, label = inner.rpartition(",")
    return selector.strip(), label.strip()


def datasource_uid() -> str:
    provisioned = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    prometheus = [d for d in provisioned if d["type"] == "prometheus"]
    assert len(prometheus) == 1, "exactly one provisioned Prometheus datasource"
    assert prometheus[0].get("uid"), "the datasource uid is fixed so dashboards can name it"
    return str(prometheus[0]["uid"])


ids = [p.stem for p in DASHBOARDS]


def test_both_dashboards_ship() -> None:
    """The overview and the per-site drill-down are provisioned."""
    assert {"monitor-overview", "monitor-site"} <= set(ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=ids)
def test_dashboard_is_valid_json_with_identity(path: Path) -> None:
    """Each dashboard loads and has a stable uid (links use it) and a title."""
    dashboard = load(path)
    assert dashboard.get("uid") == path.stem
    assert len(dashboard["uid"]) <= 40
    assert dashboard.get("title")
    assert isinstance(dashboard.get("schemaVersion"), int)
    assert list(panels(dashboard)), "no panels"


def test_dashboard_uids_and_titles_are_unique() -> None:
    """Two provisioned dashboards with one uid would silently replace each other."""
    loaded = [load(p) for p in DASHBOARDS]
    assert len({d["uid"] for d in loaded}) == len(loaded)
    assert len({d["title"] for d in loaded}) == len(loaded)


@pytest.mark.parametrize("path", DASHBOARDS, ids=ids)
def test_every_panel_uses_the_provisioned_datasource(path: Path) -> None:
    """Panels and targets name the datasource by its fixed uid, never by a default."""
    uid = datasource_uid()
    for panel in panels(load(path)):
        assert panel.get("datasource") == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target.get("datasource", {"uid": uid})["uid"] == uid, panel["title"]
            assert target.get("expr", "").strip(), f"{panel['title']}: empty expr"
    for name, var in variables(load(path)).items():
        if var.get("type") == "query":
            assert var["datasource"]["uid"] == uid, name


@pytest.mark.parametrize("path", DASHBOARDS, ids=ids)
def test_queries_use_only_exported_metrics(path: Path) -> None:
    """Every metric, label and function in a query exists (SPEC §7 + documented extras)."""
    dashboard = load(path)
    defined = frozenset(variables(dashboard))
    problems = []
    for where, expr in exprs(dashboard):
        if where.startswith("variable"):
            selector, label = label_values_selector(expr)
            expr = f"count by ({label}) ({selector})"
        problems += [f"{where}: {e}" for e in vocabulary_errors(expr, defined)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DASHBOARDS, ids=ids)
def test_panels_fit_the_grid_without_overlap(path: Path) -> None:
    """Grafana packs overlapping panels unpredictably; the layout here is deliberate."""
    cells: dict[tuple[int, int], str] = {}
    for panel in load(path)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=ids)
def test_panel_ids_are_unique(path: Path) -> None:
    """Duplicate ids break panel links and the `viewPanel` URL."""
    dashboard = load(path)
    rows = [p["id"] for p in dashboard["panels"] if p.get("type") == "row"]
    all_ids = rows + [p["id"] for p in panels(dashboard)]
    assert len(all_ids) == len(set(all_ids))


def test_site_dashboard_has_site_variable() -> None:
    """The drill-down is driven by `site`, listed from monitor_probe_success."""
    site_vars = variables(load(next(p for p in DASHBOARDS if p.stem == "monitor-site")))
    assert "site" in site_vars
    selector, label = label_values_selector(variable_query(site_vars["site"]))
    assert (selector, label) == ("monitor_probe_success", "site")
    assert site_vars["site"].get("refresh") in (1, 2), "the site list must refresh"


def test_site_dashboard_scopes_site_metrics_to_the_variable() -> None:
    """Every selector of a metric that has a `site` label filters on site="$site"."""
    dashboard = load(next(p for p in DASHBOARDS if p.stem == "monitor-site"))
    problems = []
    for where, expr in exprs(dashboard):
        if where == "variable site":
            continue
        use = promql_usage(expr)
        site_metrics = {m for m in use.metrics if m.startswith("monitor_")} - {
            "monitor_incidents_open",
            "monitor_halt_active",
            "monitor_notification_queue_depth",
        }
        filtered = {m for m, label, op, value in use.matchers if label == "site" and value == "$site"}
        problems += [f"{where}: {m} not filtered by site" for m in sorted(site_metrics - filtered)]
    assert not problems, "\n".join(problems)


def test_overview_has_halt_banner() -> None:
    """The first panel is the halt state: max(monitor_halt_active) shown as HALTED/CLEAR."""
    dashboard = load(next(p for p in DASHBOARDS if p.stem == "monitor-overview"))
    first = min(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    assert first["type"] == "stat"
    assert first["targets"][0]["expr"].replace(" ", "") == "max(monitor_halt_active)"
    texts = {
        opt["text"] for mapping in first["fieldConfig"]["defaults"]["mappings"] for opt in mapping["options"].values()
    }
    assert {"HALTED", "CLEAR"} <= texts


def test_overview_covers_the_issue_panels() -> None:
    """Overview answers: halt, incidents, site state, latency, TLS, notifications, lag."""
    dashboard = load(next(p for p in DASHBOARDS if p.stem == "monitor-overview"))
    all_exprs = " ".join(expr for _, expr in exprs(dashboard))
    for needle in (
        "max(monitor_halt_active)",
        "sum by (severity) (monitor_incidents_open)",
        "sum by (condition) (monitor_incidents_open)",
        "monitor_probe_success",
        "histogram_quantile(0.99, sum by (le) (rate(monitor_probe_duration_seconds_bucket",
        "monitor_tls_cert_expiry_timestamp_seconds) - time()) / 86400",
        'monitor_notifications_total{outcome!="delivered"}',
        "monitor_notification_queue_depth",
        "histogram_quantile(0.99, sum by (le) (rate(monitor_schedule_lag_seconds_bucket",
    ):
        assert needle in all_exprs, needle
    types = {p["type"] for p in panels(dashboard)}
    assert "state-timeline" in types


def test_provider_path_matches_compose_mount() -> None:
    """Grafana reads dashboards from the folder docker-compose mounts grafana/dashboards at."""
    provider = yaml.safe_load(DASHBOARD_PROVIDER_FILE.read_text())["providers"][0]
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    targets = {m.split(":")[1] for m in mounts if m.startswith("./grafana/dashboards")}
    assert provider["options"]["path"] in targets
    assert provider["type"] == "file"


def test_promql_reader_catches_mistakes() -> None:
    """The vocabulary check itself: typos in metrics, labels and functions are reported."""
    assert vocabulary_errors('sum by (site) (rate(monitor_probes_total{result="ok"}[5m]))') == []
    assert vocabulary_errors("monitor_probe_sucess") == ["unknown metric 'monitor_probe_sucess'"]
    assert vocabulary_errors('monitor_halt_active{site="x"}') == ["label 'site' is not on monitor_halt_active"]
    assert vocabulary_errors("histogram_quantle(0.5, up)") == ["unknown function 'histogram_quantle'"]
    assert vocabulary_errors("sum by (sight) (monitor_probe_success)") == ["grouping by unknown label 'sight'"]
    assert vocabulary_errors('up{job="$jbo"}') == ["undefined variable $jbo"]


@pytest.mark.needs_binary
def test_every_panel_query_parses(tmp_path: Path) -> None:
    """promtool accepts every query (variables substituted) as a recording rule expression."""
    promtool = which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    rules = []
    for path in DASHBOARDS:
        for i, (where, expr) in enumerate(exprs(load(path))):
            if where.startswith("variable"):
                selector, label = label_values_selector(expr)
                expr = f"count by ({label}) ({selector})"
            query = substitute_grafana(expr, {"site": "acme-shop", "check": ".*"})
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{i}", "expr": query})
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
