"""sites.yaml: every broken file gives its exact `file:line:col: path: message`; good files load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.config import load_config, parse_config
from monitor.errors import ConfigError
from monitor.results import Severity

INVALID = Path(__file__).parent / "testdata" / "invalid"
ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("name", sorted(p.stem for p in INVALID.glob("*.yaml")))
def test_invalid_config_gives_its_exact_message(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each broken file in testdata/invalid is paired with the exact errors it must produce."""
    monkeypatch.chdir(INVALID)
    expected = (INVALID / f"{name}.txt").read_text().strip()
    with pytest.raises(ConfigError) as caught:
        load_config(f"{name}.yaml", env={"MONITOR_TEST_THRESHOLD": "abc"})
    assert str(caught.value) == expected


def test_every_invalid_file_has_an_expected_message() -> None:
    """No broken config without its paired expectation (and no orphan expectations)."""
    assert {p.stem for p in INVALID.glob("*.yaml")} == {p.stem for p in INVALID.glob("*.txt")}


def test_bundled_sites_yaml_loads_and_encodes_the_protocol() -> None:
    """The shipped sites.yaml is valid and carries the four halt conditions with their people."""
    config = load_config(ROOT / "sites.yaml", env={})
    c = config.conditions
    assert c["production_down"].first_responders == ("owen", "derek")
    assert c["production_down"].escalation == ("marcus", "jonny")
    assert c["security_breach"].first_responders == ("victor", "sam")
    assert c["security_breach"].escalation == ("marcus", "jonny", "luna")
    assert c["data_loss"].first_responders == ("diana", "steve")
    assert c["financial_error"].first_responders == ("felix", "sterling")
    assert c["financial_error"].escalate_immediately
    assert all(
        c[name].halt and c[name].severity is Severity.SEV1
        for name in ("production_down", "security_breach", "data_loss", "financial_error")
    )
    assert config.checks, "the bundled config has example sites"


def test_env_interpolation_with_default_and_escape(config_from) -> None:
    """${VAR} reads the environment, ${VAR:-x} falls back, $$ is a literal dollar."""
    config = config_from(
        """
version: 1
monitor:
  title: "${TITLE:-Acme} $$5"
  tokens: {responder: "${TOKEN}"}
sites: []
""",
        env={"TOKEN": "s3cret-token-value"},
    )
    assert config.monitor.title == "Acme $5"
    assert config.monitor.tokens.responder is not None
    assert config.monitor.tokens.responder.reveal() == "s3cret-token-value"
    assert "s3cret" not in repr(config.monitor.tokens)


def test_defaults_apply_to_checks_and_checks_override_them(config_from) -> None:
    """A check without timing keys takes `defaults`; its own keys win."""
    config = config_from(
        """
version: 1
defaults: {interval: 1m, timeout: 5s, failure_threshold: 4, success_threshold: 3}
sites:
  - name: a
    checks:
      - {type: http, url: "https://a.example/"}
      - {type: http, name: fast, url: "https://a.example/x", interval: 250ms, timeout: 100ms, failure_threshold: 1}
"""
    )
    first, fast = config.checks
    assert (first.interval, first.timeout, first.failure_threshold, first.success_threshold) == (60, 5, 4, 3)
    assert (fast.interval, fast.timeout, fast.failure_threshold) == (0.25, 0.1, 1)
    assert fast.key == "a/fast"


def test_condition_overrides_keep_built_in_defaults(config_from) -> None:
    """Overriding one key of a built-in condition keeps the rest; new conditions need a severity."""
    config = config_from(
        """
version: 1
people: {owen: {name: Owen}}
conditions:
  api_failure: {escalate_after: 30m}
  checkout_broken: {severity: SEV-2, halt: true, first_responders: [owen]}
sites: []
"""
    )
    api = config.conditions["api_failure"]
    assert (api.severity, api.halt, api.auto_resolve, api.escalate_after) == (Severity.SEV2, False, True, 1800)
    custom = config.conditions["checkout_broken"]
    assert (custom.severity, custom.halt, custom.first_responders) == (Severity.SEV2, True, ("owen",))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)],
)
def test_durations(config_from, text: str, seconds: float) -> None:
    """Durations are strings with a unit."""
    config = config_from(f"version: 1\ndefaults: {{interval: '{text}', timeout: 100ms}}\nsites: []\n")
    assert config.defaults.interval == seconds


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not a traceback."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value).endswith("nope.yaml:1:1: file not found")


def test_missing_env_var_never_prints_other_values() -> None:
    """An unset variable is named; values of set variables never appear in errors."""
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "version: 1\nmonitor: {store: '${S}', title: '${T}'}\nsites: []\n",
            "x.yaml",
            {"S": "postgresql://u:hunter2@db/x"},
        )
    assert "environment variable T is not set" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert os.environ.get("T") is None
