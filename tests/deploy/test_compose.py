"""docker-compose.yml, read statically (no Docker engine on CI): services wired to each
other and to the provisioning files in this repo, images pinned, the example config valid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import COMPOSE_FILE, DASHBOARD_PROVIDER_FILE, DATASOURCES_FILE, PROMETHEUS_CONFIG, REPO

COMPOSE_SITES = REPO / "deploy" / "compose" / "sites.yaml"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def service(name: str) -> dict[str, Any]:
    return dict(compose()["services"][name])


def bind_mounts(name: str) -> list[tuple[str, str]]:
    """(host path, container path) of a service's bind mounts (named volumes skipped)."""
    out = []
    for volume in service(name).get("volumes", []):
        if volume.startswith("${"):  # ${VAR:-default}:/container[:mode] -> the default
            variable, _, rest = volume.partition("}")
            host, container = variable.partition(":-")[2], rest.split(":")[1]
        else:
            host, container = volume.split(":")[:2]
        if host.startswith("."):
            out.append((host, container))
    return out


def test_stack_has_the_four_services() -> None:
    """monitor, Prometheus, Alertmanager and Grafana."""
    assert set(compose()["services"]) >= {"monitor", "prometheus", "alertmanager", "grafana"}


@pytest.mark.parametrize("name", ["monitor", "prometheus", "alertmanager", "grafana"])
def test_bind_mounts_exist_in_the_repo(name: str) -> None:
    """Every file or folder the stack mounts ships in this repository."""
    for host, _ in bind_mounts(name):
        assert (REPO / host).exists(), host


@pytest.mark.parametrize("name", ["prometheus", "alertmanager", "grafana"])
def test_third_party_images_are_pinned(name: str) -> None:
    """A tag that is not `latest` (a moving tag changes the stack under you)."""
    image = service(name)["image"]
    _, _, tag = image.rpartition(":")
    assert tag, f"{image}: no tag"
    assert tag != "latest"
    assert any(ch.isdigit() for ch in tag), image


def test_monitor_is_built_here_and_listens_on_all_interfaces() -> None:
    """The engine is this repo's image; in a container it must listen on 0.0.0.0."""
    monitor = service("monitor")
    assert monitor["build"] == "."
    assert monitor["environment"]["MONITOR_LISTEN"] == "0.0.0.0:9400"
    assert ("./deploy/compose/sites.yaml", "/config/sites.yaml") in bind_mounts("monitor")
    assert any(v.startswith("monitor-data:/data") for v in monitor["volumes"])
    assert monitor.get("init") is True


def test_secrets_come_from_the_environment() -> None:
    """Tokens and the Grafana admin password are required variables, never defaults."""
    env = {**service("monitor")["environment"], **service("grafana")["environment"]}
    for key in ("MONITOR_RESPONDER_TOKEN", "MONITOR_OWNER_TOKEN", "GF_SECURITY_ADMIN_PASSWORD"):
        assert str(env[key]).startswith("${"), key
        assert ":?" in str(env[key]), f"{key}: must be required (${{VAR:?message}})"


def test_ports_are_published_on_loopback_only() -> None:
    """Nothing in the stack has auth in front of it by default: keep it off the network."""
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_grafana_anonymous_viewer_and_provisioning() -> None:
    """Anonymous users can view (not edit); provisioning and dashboards are mounted."""
    grafana = service("grafana")
    env = grafana["environment"]
    assert str(env["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = dict(bind_mounts("grafana"))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert DATASOURCES_FILE.exists()
    assert DASHBOARD_PROVIDER_FILE.exists()
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(mounts["./grafana/dashboards"])
    assert (REPO / "grafana/dashboards" / Path(home).name).exists()


def test_datasource_points_at_the_prometheus_service() -> None:
    """Grafana reaches Prometheus by its compose service name."""
    datasource = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_prometheus_and_alertmanager_mount_the_shipped_configs() -> None:
    """Prometheus reads deploy/prometheus (config + rules); Alertmanager deploy/alertmanager."""
    prom = dict(bind_mounts("prometheus"))
    assert prom["./deploy/prometheus"] == "/etc/prometheus"
    command = service("prometheus")["command"]
    assert f"--config.file=/etc/prometheus/{PROMETHEUS_CONFIG.name}" in command
    am = dict(bind_mounts("alertmanager"))
    assert am["./deploy/alertmanager"] == "/etc/alertmanager"


def test_compose_sites_yaml_listens_everywhere_and_keeps_state_in_data() -> None:
    """The example config is container-ready: 0.0.0.0, state under /data."""
    config = yaml.safe_load(COMPOSE_SITES.read_text())
    assert config["monitor"]["listen"] == "0.0.0.0:9400"
    assert config["monitor"]["workspace"] == "/data"
    assert config["monitor"]["store"].startswith("sqlite:////data/")


def test_compose_sites_yaml_passes_monitor_check() -> None:
    """`monitor check` accepts the example config the stack mounts."""
    if not (REPO / "monitor" / "cli.py").exists():
        pytest.skip("monitor/cli.py does not exist yet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env |= {"MONITOR_RESPONDER_TOKEN": "t-responder", "MONITOR_OWNER_TOKEN": "t-owner", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "check", "-c", str(COMPOSE_SITES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
