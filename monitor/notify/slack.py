"""Slack incoming webhook: `text` (the notification fallback) plus Block Kit `blocks`.

The webhook URL is itself the credential, so it is a Secret: never logged, never
in an outbox row or a reason. Links to the status page and the incident API appear
when `monitor.public_url` is set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.notify import Channel, Delivery, Message, register_channel
from monitor.notify._send import incident_link, post_json, secret_values
from monitor.notify.webhook import check_url
from monitor.redact import Secret
from monitor.schema import Duration

HEADLINE = {
    "opened": "Incident opened",
    "escalated": "ESCALATED: not acknowledged in time",
    "reminder": "Reminder: still open",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "grouped": "Incident storm",
}
ICON = {"SEV-1": ":red_circle:", "SEV-2": ":large_orange_circle:", "SEV-3": ":large_yellow_circle:"}
MAX_LISTED = 20  # Slack caps a message at 50 blocks


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackParams:
    url: Secret
    timeout: Duration = Duration(10)

    def check(self) -> Iterator[tuple[str, str]]:
        yield from check_url("url", self.url)


def esc(text: object) -> str:
    """Slack's mrkdwn escaping."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str | None, label: str) -> str:
    return f"<{url}|{esc(label)}>" if url else esc(label)


def _incident_blocks(message: Message, inc: Mapping[str, Any]) -> list[dict[str, Any]]:
    responder = inc.get("acknowledged_by") or inc.get("first_responder")
    fields = [
        f"*Severity*\n{ICON.get(str(inc.get('severity')), ':large_blue_circle:')} {esc(inc.get('severity'))}",
        f"*Site*\n{esc(inc.get('site'))}",
        f"*Condition*\n{esc(inc.get('condition'))}{' (HALT)' if inc.get('halt') else ''}",
        f"*Responder*\n{'@' + esc(responder) if responder else 'none'}",
        f"*Status*\n{esc(inc.get('status'))}",
        f"*Incident*\n{_link(incident_link(message, inc), str(inc.get('id')))}",
    ]
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": esc(inc.get("description", ""))}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]


def payload(message: Message) -> dict[str, Any]:
    incs = message.incidents
    head = HEADLINE.get(message.event, message.event)
    if message.event == "grouped":
        text = f"{head}: {len(incs)} incidents opened for @{message.recipient}"
    else:
        inc = incs[0] if incs else {}
        text = f"[{inc.get('severity')}] {head}: {inc.get('id')} {inc.get('description', '')}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"for @{esc(message.recipient)}"}]},
    ]
    for inc in incs[:MAX_LISTED]:
        blocks.extend(_incident_blocks(message, inc))
        blocks.append({"type": "divider"})
    if len(incs) > MAX_LISTED:
        more = f"…and {len(incs) - MAX_LISTED} more"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": more}})
    status_page = message.links.get("status_page")
    if status_page:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _link(status_page, "Status page")}]})
    return {"text": esc(text), "blocks": blocks}


@dataclass(frozen=True, slots=True)
class Slack:
    params: SlackParams

    async def send(self, message: Message, session: aiohttp.ClientSession) -> Delivery:
        return await post_json(
            session,
            self.params.url.reveal(),
            payload(message),
            timeout=self.params.timeout,
            secrets=secret_values(self.params.url),
        )


@register_channel("slack", SlackParams)
def slack(params: SlackParams) -> Channel:
    return Slack(params)
