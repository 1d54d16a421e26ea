"""Each platform check type parses from YAML; mistakes are located file:line:col: path: message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.probes.secrets import SecretsCheck
from monitor.probes.statuspage import StatuspageCheck
from monitor.probes.stripe import StripeCheck
from monitor.probes.supabase import SupabaseCheck

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "platform-client.yaml"


def config(checks: str) -> str:
    body = "\n".join("      " + line for line in checks.strip("\n").splitlines())
    return f"version: 1\nsites:\n  - name: acme-shop\n    client: acme\n    checks:\n{body}\n"


def test_example_file_parses() -> None:
    """docs/examples/platform-client.yaml parses and has one check of each platform type."""
    cfg = parse_config(EXAMPLE.read_text(), str(EXAMPLE), {})
    types = {c.type for c in cfg.checks}
    assert {"statuspage", "supabase", "stripe", "secrets"} <= types
    params = {type(c.params) for c in cfg.checks}
    assert {StatuspageCheck, SupabaseCheck, StripeCheck, SecretsCheck} <= params


def test_fraction_and_bounds_parse() -> None:
    """max_drop takes '20%' or 0.2; amount_bounds takes [min, max]."""
    cfg = parse_config(
        config(
            """
- type: supabase
  url: https://abc.supabase.co
  anon_key: anon
  service_key: svc
  watch: [{table: orders, max_drop: "20%"}, {table: users, max_drop: 0.1, min_rows: 5}]
- type: stripe
  api_key: rk_live_x
  amount_bounds: {usd: [50, 500000]}
  currencies: [usd, eur]
  max_failed_ratio: 30%
"""
        )
    )
    supa, stripe = (c.params for c in cfg.checks)
    assert [w.max_drop.value for w in supa.watch] == [0.2, 0.1]
    assert supa.ref == "abc"
    assert stripe.amount_bounds == {"usd": (50, 500000)}
    assert stripe.max_failed_ratio.value == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        (
            "- type: statuspage\n  url: https://status.example\n  formt: stripe",
            r":8:9: sites\[0\]\.checks\[0\]\.formt: unknown key \(did you mean 'format'\?\)",
        ),
        (
            "- type: statuspage\n  url: https://status.example\n  format: rss",
            r"sites\[0\]\.checks\[0\]\.format: expected one of atlassian, stripe",
        ),
        ("- type: stripe\n  api_key: pk_live_abc", r"sites\[0\]\.checks\[0\]\.api_key: is a publishable key"),
        (
            "- type: stripe\n  api_key: rk_live_x\n  amount_bounds: {usd: [9, 1]}",
            r"checks\[0\]\.amount_bounds: usd: expected \[min, max\]",
        ),
        (
            "- type: supabase\n  url: https://x.example\n  anon_key: a\n  backups: {}",
            r"checks\[0\]\.management_token: `services` and `backups`",
        ),
        (
            "- type: supabase\n  url: https://x.example\n  anon_key: a\n  service_key: s\n"
            "  watch: [{table: t, max_drop: lots}]",
            r"watch\[0\]\.max_drop: expected a fraction",
        ),
        (
            "- type: supabase\n  url: https://x.example\n  anon_key: a\n  migrations: {column: v}",
            r"checks\[0\]\.migrations: set exactly one of `view` or `rpc`",
        ),
        (
            "- type: secrets\n  url: https://shop.example\n  test_keys: loud",
            r"checks\[0\]\.test_keys: expected one of warn, breach, ignore",
        ),
        ("- type: supabase\n  url: https://x.example", r"checks\[0\]\.anon_key: is required"),
    ],
)
def test_bad_keys_are_located(checks: str, message: str) -> None:
    """A wrong key or value is reported as file:line:col: path: message."""
    with pytest.raises(ConfigError) as err:
        parse_config(config(checks), "sites.yaml", {})
    text = str(err.value)
    assert re.search(r"^sites\.yaml:\d+:\d+: ", text, re.M), text
    assert re.search(message, text), text


def test_secret_from_env_is_not_echoed() -> None:
    """A secret that came from the environment never appears in a config error."""
    text = config("- type: stripe\n  api_key: ${STRIPE_KEY}\n  window: 10s")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "sites.yaml", {"STRIPE_KEY": "rk_live_SUPERSECRET123456"})
    assert "SUPERSECRET" not in str(err.value)
