"""Incident ids, the chatroom post and the report file follow the emergency protocol's template."""

from __future__ import annotations

from pathlib import Path

from monitor.config import parse_config
from monitor.incidents import lifecycle
from monitor.incidents.model import Incident, Status, incident_id
from monitor.incidents.report import Reports, chatroom_post, incident_file
from monitor.results import FailureKind, Problem, Severity

CONFIG = parse_config(
    """
version: 1
people: {owen: {name: Owen}, derek: {name: Derek}}
conditions:
  production_down: {first_responders: [owen, derek]}
sites: []
""",
    "sites.yaml",
    {},
)
T0 = 1_795_600_000.0  # 2026-11-25T…


def opened() -> Incident:
    problem = Problem(
        condition="production_down", kind=FailureKind.BAD_STATUS, summary="https://shop.acme.example/ answered 503"
    )
    return lifecycle.open_incident(
        incident_id=incident_id("20261125", Severity.SEV1, 1),
        site="acme-shop",
        client="acme",
        check="http",
        policy=CONFIG.conditions["production_down"],
        severity=Severity.SEV1,
        problem=problem,
        streak=3,
        now=T0,
    )


def test_incident_id_format() -> None:
    """INCIDENT-YYYYMMDD-SEVn-NNN."""
    assert incident_id("20261125", Severity.SEV1, 1) == "INCIDENT-20261125-SEV1-001"
    assert incident_id("20261125", Severity.SEV3, 42) == "INCIDENT-20261125-SEV3-042"


def test_chatroom_post_is_the_template_exactly() -> None:
    """The post matches SPEC §3 line for line."""
    assert chatroom_post(opened()) == (
        "[TASK_ID]: INCIDENT-20261125-SEV1-001\n"
        "[CURRENT_STATE]: BLOCKED\n"
        "[PAYLOAD_PATH]: .tmp/incidents/INCIDENT-20261125-SEV1-001.md\n"
        "[NEXT_HOP]: @owen\n"
        "\n"
        "**INCIDENT REPORT**\n"
        "\n"
        "- **Severity**: SEV-1\n"
        "- **Description**: acme-shop: https://shop.acme.example/ answered 503 on 3 consecutive probes\n"
        "- **Impact**: production site down; halt condition production_down is active\n"
        "- **First Responder**: @owen\n"
        "- **Status**: INVESTIGATING\n"
    )


def test_lifecycle_ack_then_resolve() -> None:
    """INVESTIGATING -> MITIGATING on ack -> RESOLVED, each on the timeline with who did it."""
    incident = lifecycle.acknowledge(opened(), by="owen", now=T0 + 60)
    assert incident.status is Status.MITIGATING and incident.acknowledged_at == T0 + 60
    incident = lifecycle.resolve(incident, by="owen", note="rolled back", now=T0 + 600)
    assert incident.status is Status.RESOLVED
    assert [(e.event, e.by) for e in incident.timeline] == [
        ("opened", "monitor"),
        ("acknowledged", "owen"),
        ("resolved", "owen"),
    ]


def test_resolved_report_has_the_post_incident_section() -> None:
    """On resolution the file gains time to acknowledge/resolve and the RCA and learning headings."""
    incident = lifecycle.acknowledge(opened(), by="owen", now=T0 + 90)
    incident = lifecycle.resolve(incident, by="owen", note="rolled back deploy", now=T0 + 3725)
    text = incident_file(incident)
    assert "- **Status**: RESOLVED" in text
    assert "- **Time to acknowledge**: 1m 30s" in text
    assert "- **Time to resolve**: 1h 02m 05s" in text
    assert "### Root Cause Analysis" in text and "### Learning Capture" in text
    assert "| 2026-" in text and "rolled back deploy" in text


def test_open_report_has_no_post_incident_section() -> None:
    """While open, the report carries the template and timeline only."""
    text = incident_file(opened())
    assert "Post-incident" not in text and "[CURRENT_STATE]: BLOCKED" in text


def test_chatroom_posts_once_per_status(tmp_path: Path) -> None:
    """Posting the same status twice (a restart after a crash) appends once."""
    reports = Reports(tmp_path)
    assert reports.post(opened()) is True
    assert reports.post(opened()) is False
    acked = lifecycle.acknowledge(opened(), by="owen", now=T0 + 5)
    assert reports.post(acked) is True
    text = (tmp_path / "chatroom.md").read_text()
    assert text.count("[TASK_ID]: INCIDENT-20261125-SEV1-001") == 2
    assert "- **Status**: MITIGATING" in text


def test_report_file_written_atomically_under_tmp_incidents(tmp_path: Path) -> None:
    """The report lands at <workspace>/.tmp/incidents/<id>.md with no temp files left behind."""
    Reports(tmp_path).write(opened())
    folder = tmp_path / ".tmp" / "incidents"
    assert [p.name for p in folder.iterdir()] == ["INCIDENT-20261125-SEV1-001.md"]
