"""Prometheus config, the engine's alert rules and their promtool unit tests, and the
Alertmanager config: each valid, and every alert tested both firing and quiet."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    RULES_FILE,
    RULES_TEST_FILE,
    vocabulary_errors,
    which,
)

REQUIRED_ALERTS = {
    "MonitorDown",
    "MonitorAbsent",
    "MonitorHaltActive",
    "MonitorNotificationsFailing",
    "MonitorOutboxGrowing",
    "MonitorScheduleLagHigh",
    "MonitorCertExpiringSoon",
    "MonitorCertExpiringCritical",
}
SEVERITIES = {"SEV-1", "SEV-2", "SEV-3", "SEV-4"}


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alert_cases() -> list[dict[str, Any]]:
    tests = yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
    return [case for group in tests for case in group.get("alert_rule_test", [])]


def run(binary: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    tool = which(binary)
    if tool is None:
        pytest.skip(f"{binary} not installed (Debian package `prometheus`/`prometheus-alertmanager`)")
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def test_rules_file_has_the_required_alerts() -> None:
    """The alerts the deploy issue asks for all exist, each name once."""
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    """Routing needs a severity; a human needs a summary and a description with labels."""
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert "$labels" in annotations["summary"] + annotations["description"]


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_uses_only_exported_metrics(rule: dict[str, Any]) -> None:
    """A renamed metric would silently disable an alert: check names and labels."""
    assert vocabulary_errors(rule["expr"]) == []


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    """Each alert has a promtool case expecting it to fire and one expecting silence."""
    cases = alert_cases()
    missing = []
    for name in (rule["alert"] for rule in alerts()):
        mine = [c for c in cases if c["alertname"] == name]
        if not any(c.get("exp_alerts") for c in mine):
            missing.append(f"{name}: no firing case")
        if not any(not c.get("exp_alerts") for c in mine):
            missing.append(f"{name}: no quiet case")
    assert not missing, "\n".join(missing)


def test_unit_tests_name_only_existing_alerts() -> None:
    """A test for a renamed alert would pass vacuously when it expects silence."""
    names = {rule["alert"] for rule in alerts()}
    assert {c["alertname"] for c in alert_cases()} <= names


def test_unit_tests_load_the_shipped_rules() -> None:
    """The test file points at the rules file that Prometheus loads."""
    listed = yaml.safe_load(RULES_TEST_FILE.read_text())["rule_files"]
    assert [(RULES_TEST_FILE.parent / f).resolve() for f in listed] == [RULES_FILE.resolve()]


def test_prometheus_scrapes_monitor_job_with_the_rules() -> None:
    """prometheus.yml scrapes job `monitor` (the alerts match on it) and loads rules/."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["monitor"]["static_configs"] for t in sc["targets"]]
    assert targets == ["monitor:9400"]
    rule_globs = config["rule_files"]
    assert any(RULES_FILE in PROMETHEUS_CONFIG.parent.glob(g) for g in rule_globs)
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]


@pytest.mark.needs_binary
def test_promtool_check_rules() -> None:
    """promtool accepts the rules file."""
    proc = run("promtool", "check", "rules", RULES_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.needs_binary
def test_promtool_unit_tests_pass() -> None:
    """promtool test rules: every alert fires and stays quiet exactly as the cases say."""
    proc = run("promtool", "test", "rules", RULES_TEST_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


@pytest.mark.needs_binary
def test_promtool_check_config() -> None:
    """promtool accepts prometheus.yml, including the rule files it references."""
    proc = run("promtool", "check", "config", PROMETHEUS_CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


@pytest.mark.needs_binary
def test_amtool_check_config() -> None:
    """amtool accepts alertmanager.yml."""
    proc = run("amtool", "check-config", ALERTMANAGER_CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_inhibitions_name_existing_alerts() -> None:
    """An inhibit rule naming a renamed alert silently stops inhibiting."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    names = {rule["alert"] for rule in alerts()}
    for rule in config.get("inhibit_rules", []):
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            value = matcher.split("=", 1)[1].strip("~\"'")
            assert set(value.split("|")) <= names, matcher
