"""A status page: Atlassian Statuspage v2 `/api/v2/summary.json` and Stripe's `/current`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from monitor.fakes import FakeServer

_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
    "maintenance": "Service Under Maintenance",
}
_STRIPE_MESSAGES = {"up": "All services are online.", "degraded": "Degraded performance.", "down": "Service outage."}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeStatuspage(FakeServer):
    def __init__(self, name: str = "Platform Status") -> None:
        super().__init__()
        self.name = name
        self.indicator = "none"
        self.components: dict[str, str] = {"API": "operational", "Dashboard": "operational"}
        self.incidents: list[str] = []
        self.largestatus = "up"
        self.stripe_statuses = {s: "up" for s in ("api", "dashboard", "stripejs", "checkoutjs", "webhooks", "emails")}
        self.app.router.add_get("/api/v2/summary.json", self._summary)
        self.app.router.add_get("/current", self._stripe)

    def set_page(self, indicator: str, **components: str) -> None:
        """Page indicator and component statuses (by name), e.g. set_page("major", API="major_outage")."""
        self.indicator = indicator
        self.components.update(components)

    def set_stripe(self, largestatus: str, **statuses: str) -> None:
        self.largestatus = largestatus
        self.stripe_statuses.update(statuses)

    def error_body(self, status: int) -> dict[str, object]:
        return {"code": status, "message": "Internal server error" if status >= 500 else "Error"}

    async def _summary(self, _request: web.Request) -> web.Response:
        now = _now()
        page = {"id": "fakepage0001", "name": self.name, "url": self.url, "time_zone": "Etc/UTC", "updated_at": now}
        components: list[dict[str, Any]] = [
            {
                "id": f"comp{i:04d}",
                "name": name,
                "status": status,
                "created_at": now,
                "updated_at": now,
                "position": i,
                "description": None,
                "showcase": True,
                "start_date": None,
                "group_id": None,
                "page_id": "fakepage0001",
                "group": False,
                "only_show_if_degraded": False,
            }
            for i, (name, status) in enumerate(self.components.items(), start=1)
        ]
        incidents = [
            {"id": f"inc{i:04d}", "name": name, "status": "investigating", "impact": self.indicator, "created_at": now}
            for i, name in enumerate(self.incidents, start=1)
        ]
        body = {
            "page": page,
            "components": components,
            "incidents": incidents,
            "scheduled_maintenances": [],
            "status": {"indicator": self.indicator, "description": _DESCRIPTIONS.get(self.indicator, self.indicator)},
        }
        return web.json_response(body)

    async def _stripe(self, _request: web.Request) -> web.Response:
        body = {
            "largestatus": self.largestatus,
            "message": _STRIPE_MESSAGES.get(self.largestatus, self.largestatus),
            "statuses": self.stripe_statuses,
            "time": datetime.now(UTC).strftime("%B %d, %H:%M UTC"),
        }
        return web.json_response(body)
