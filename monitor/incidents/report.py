"""The incident report file and the chatroom.md post, in the emergency protocol's template.

Rendering is pure; `Reports` writes files atomically (temp file + rename) and
appends chatroom posts once each (it looks for the post before appending, so a
restart after a crash never posts twice).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from monitor.clock import rfc3339
from monitor.incidents.model import Incident, Status


def report_path(incident_id: str) -> str:
    return f".tmp/incidents/{incident_id}.md"


def _state(incident: Incident) -> str:
    if incident.status is Status.RESOLVED:
        return "RESOLVED"
    return "BLOCKED" if incident.halt else "ACTIVE"


def _handle(name: str | None) -> str:
    return f"@{name}" if name else "(no first responder configured)"


def chatroom_post(incident: Incident) -> str:
    """The block posted to chatroom.md (SPEC §3), for the incident's current status."""
    return (
        f"[TASK_ID]: {incident.id}\n"
        f"[CURRENT_STATE]: {_state(incident)}\n"
        f"[PAYLOAD_PATH]: {report_path(incident.id)}\n"
        f"[NEXT_HOP]: {_handle(incident.first_responder)}\n"
        "\n"
        "**INCIDENT REPORT**\n"
        "\n"
        f"- **Severity**: {incident.severity.value}\n"
        f"- **Description**: {incident.description}\n"
        f"- **Impact**: {incident.impact}\n"
        f"- **First Responder**: {_handle(incident.first_responder)}\n"
        f"- **Status**: {incident.status.value}\n"
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not acknowledged"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def incident_file(incident: Incident) -> str:
    """The whole report: the template, details, timeline, and once resolved the post-incident part."""
    lines = [f"# {incident.id}", "", chatroom_post(incident)]
    lines += [
        "## Details",
        "",
        f"- **Site**: {incident.site}" + (f" (client {incident.client})" if incident.client else ""),
        f"- **Condition**: {incident.condition}" + (" (halt condition)" if incident.halt else ""),
        f"- **Checks**: {', '.join(incident.checks)}",
        f"- **Opened**: {rfc3339(incident.opened_at)}",
        f"- **Acknowledged**: {rfc3339(incident.acknowledged_at) or '—'}"
        + (f" by @{incident.acknowledged_by}" if incident.acknowledged_by else ""),
        f"- **Resolved**: {rfc3339(incident.resolved_at) or '—'}"
        + (f" by @{incident.resolved_by}" if incident.resolved_by else ""),
        f"- **Paged**: {', '.join('@' + p for p in incident.paged) or 'nobody yet'}",
        "",
        "## Timeline",
        "",
        "| at (UTC) | event | by | detail |",
        "|---|---|---|---|",
    ]
    for e in incident.timeline:
        detail = e.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {rfc3339(e.at)} | {e.event} | {e.by or ''} | {detail} |")
    if incident.status is Status.RESOLVED:
        lines += _post_incident(incident)
    return "\n".join(lines) + "\n"


def _post_incident(incident: Incident) -> list[str]:
    assert incident.resolved_at is not None
    tta = None if incident.acknowledged_at is None else incident.acknowledged_at - incident.opened_at
    return [
        "",
        "## Post-incident",
        "",
        f"- **Time to acknowledge**: {_duration(tta)}",
        f"- **Time to resolve**: {_duration(incident.resolved_at - incident.opened_at)}",
        f"- **Resolution**: {incident.resolution_note or '—'}",
        "",
        "### Root Cause Analysis",
        "",
        "_What broke and why?_",
        "",
        "### Learning Capture",
        "",
        "_What would prevent recurrence?_",
        "",
        "### Directive Update",
        "",
        "_If a process gap caused this incident, which directive changes?_",
        "",
    ]


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Reports:
    """Writes reports under a workspace. Blocking file I/O: call it off the event loop."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.chatroom = workspace / "chatroom.md"

    def write(self, incident: Incident) -> None:
        write_atomic(self.workspace / report_path(incident.id), incident_file(incident))

    def post(self, incident: Incident) -> bool:
        """Append the chatroom post for the incident's status unless it is already there."""
        post = chatroom_post(incident)
        existing = self.chatroom.read_text(encoding="utf-8") if self.chatroom.exists() else ""
        if post in existing:
            return False
        self.chatroom.parent.mkdir(parents=True, exist_ok=True)
        with self.chatroom.open("a", encoding="utf-8") as f:
            f.write(("\n" if existing and not existing.endswith("\n\n") else "") + post + "\n")
            f.flush()
            os.fsync(f.fileno())
        return True
