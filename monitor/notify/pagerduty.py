"""PagerDuty Events API v2: POST {events_url}/v2/enqueue.

dedup_key = incident id, so every page about one incident (open, escalation,
reminder, and a retry after a restart) lands on the same PagerDuty alert;
acknowledged and resolved map to event_action acknowledge / resolve. A grouped
page sends one trigger per incident (PagerDuty groups alerts itself). Severity:
SEV-1 critical, SEV-2 error, SEV-3 warning, SEV-4 info.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.notify import Channel, Delivery, Message, register_channel
from monitor.notify._send import SEVERITY_WORD, incident_link, post_json, secret_values, when
from monitor.redact import Secret
from monitor.schema import Duration, HttpUrl

ACTION = {"acknowledged": "acknowledge", "resolved": "resolve"}  # everything else triggers


@dataclass(frozen=True, slots=True, kw_only=True)
class PagerDutyParams:
    routing_key: Secret
    events_url: HttpUrl = HttpUrl("https://events.pagerduty.com")
    source: str = "monitor"
    timeout: Duration = Duration(10)


def event(message: Message, inc: Mapping[str, Any], routing_key: str, source: str) -> dict[str, Any]:
    action = ACTION.get(message.event, "trigger")
    doc: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": str(inc.get("id"))}
    if action != "trigger":
        return doc
    summary = f"[{inc.get('severity')}] {inc.get('description') or inc.get('id')}"
    doc["payload"] = {
        "summary": summary[:1024],
        "source": f"{source}:{inc.get('site')}",
        "severity": SEVERITY_WORD.get(str(inc.get("severity")), "error"),
        "timestamp": inc.get("opened_at") or when(message),
        "component": inc.get("site"),
        "group": inc.get("client") or None,
        "class": inc.get("condition"),
        "custom_details": {
            "incident": inc.get("id"),
            "event": message.event,
            "recipient": message.recipient,
            "condition": inc.get("condition"),
            "halt": inc.get("halt"),
            "status": inc.get("status"),
            "impact": inc.get("impact"),
            "first_responder": inc.get("first_responder"),
            "paged": inc.get("paged"),
            "check": inc.get("check"),
        },
    }
    doc["payload"] = {k: v for k, v in doc["payload"].items() if v is not None}
    doc["client"] = "monitor"
    link = incident_link(message, inc)
    if link:
        doc["client_url"] = link
        doc["links"] = [{"href": link, "text": f"Incident {inc.get('id')}"}]
    return doc


@dataclass(frozen=True, slots=True)
class PagerDuty:
    params: PagerDutyParams

    async def send(self, message: Message, session: aiohttp.ClientSession) -> Delivery:
        url = self.params.events_url.rstrip("/") + "/v2/enqueue"
        key = self.params.routing_key.reveal()
        result = Delivery.delivered()
        for inc in message.incidents:
            result = await post_json(
                session,
                url,
                event(message, inc, key, self.params.source),
                timeout=self.params.timeout,
                secrets=secret_values(self.params.routing_key),
            )
            if not result.ok:  # the outbox retries the whole message; dedup_key makes repeats harmless
                return result
        return result


@register_channel("pagerduty", PagerDutyParams)
def pagerduty(params: PagerDutyParams) -> Channel:
    return PagerDuty(params)
