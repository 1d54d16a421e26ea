"""Alertmanager: POST {url}/api/v2/alerts with one alert per incident.

Labels (the alert's identity): alertname=MonitorIncident, incident, site, condition,
severity (SEV-n). Annotations: summary, description, impact, status, responder, halt.
A firing alert carries endsAt = now + 4 x resend_interval (as Prometheus does), and
the outbox worker re-posts every open incident's alert each `resend_interval`, so
Alertmanager never times it out (its resolve_timeout) while the incident is open,
and it still expires on its own if the monitor dies. `resolved` posts endsAt =
the resolution time. A grouped page posts all its alerts in one request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.clock import parse_rfc3339, rfc3339
from monitor.notify import Channel, Delivery, Message, register_channel
from monitor.notify._send import incident_link, post_json, secret_values
from monitor.notify.webhook import check_url
from monitor.redact import Secret
from monitor.schema import Duration

ALERTNAME = "MonitorIncident"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertmanagerParams:
    url: Secret  # may carry basic-auth credentials
    resend_interval: Duration = Duration(60)
    timeout: Duration = Duration(10)

    def check(self) -> Iterator[tuple[str, str]]:
        yield from check_url("url", self.url)
        if self.resend_interval < 1:
            yield "resend_interval", "must be at least 1s"


def alert(message: Message, inc: Mapping[str, Any], resend_interval: float) -> dict[str, Any]:
    opened = inc.get("opened_at") or rfc3339(message.sent_at)
    resolved = inc.get("status") == "RESOLVED" or message.event == "resolved"
    if resolved:
        ends = inc.get("resolved_at") or rfc3339(message.sent_at)
    else:
        ends = rfc3339(message.sent_at + 4 * resend_interval)
    if opened and ends and parse_rfc3339(ends) < parse_rfc3339(opened):
        ends = opened
    responder = inc.get("acknowledged_by") or inc.get("first_responder")
    doc: dict[str, Any] = {
        "labels": {
            "alertname": ALERTNAME,
            "incident": str(inc.get("id")),
            "site": str(inc.get("site")),
            "condition": str(inc.get("condition")),
            "severity": str(inc.get("severity")),
        },
        "annotations": {
            "summary": f"[{inc.get('severity')}] {inc.get('id')}",
            "description": str(inc.get("description", "")),
            "impact": str(inc.get("impact", "")),
            "status": str(inc.get("status", "")),
            "responder": f"@{responder}" if responder else "",
            "halt": "true" if inc.get("halt") else "false",
        },
        "startsAt": opened,
        "endsAt": ends,
    }
    link = incident_link(message, inc)
    if link:
        doc["generatorURL"] = link
    return doc


@dataclass(frozen=True, slots=True)
class Alertmanager:
    params: AlertmanagerParams

    @property
    def refresh_every(self) -> float:
        """The outbox worker re-posts open incidents this often (see the module docstring)."""
        return float(self.params.resend_interval)

    async def send(self, message: Message, session: aiohttp.ClientSession) -> Delivery:
        alerts = [alert(message, inc, self.params.resend_interval) for inc in message.incidents]
        return await post_json(
            session,
            self.params.url.reveal().rstrip("/") + "/api/v2/alerts",
            alerts,
            timeout=self.params.timeout,
            secrets=secret_values(self.params.url),
        )


@register_channel("alertmanager", AlertmanagerParams)
def alertmanager(params: AlertmanagerParams) -> Channel:
    return Alertmanager(params)
