"""A Supabase project: PostgREST tables behind anon/service keys with RLS, GoTrue and
Storage health, and the Management API (service health, database backups).

Tables answer like PostgREST: `Prefer: count=exact` fills the total in `Content-Range`
(`0-0/1234`, `*/0` when empty), `Range: 0-0` returns one row (206 when there are more),
an unknown table is 404 with a PGRST205 body. With the anon key a table with RLS on
returns `[]`, with `anon_grant=False` it is a 401 (42501, permission denied); with RLS
off the anon key reads rows, which is what the RLS canary must catch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from monitor.fakes import FakeServer

Row = dict[str, Any]
ANON_KEY = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiYW5vbiIsInJlZiI6ImZha2UifQ.ZmFrZS1hbm9uLXNpZ25hdHVyZQ"
SERVICE_KEY = "sb_secret_FAKEserviceKey0000000000"
MANAGEMENT_TOKEN = "sbp_" + "0" * 40


@dataclass(slots=True)
class Table:
    rows: list[Row] = field(default_factory=list)
    rls: bool = True
    anon_grant: bool = True


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeSupabase(FakeServer):
    def __init__(
        self,
        *,
        anon_key: str = ANON_KEY,
        service_key: str = SERVICE_KEY,
        management_token: str = MANAGEMENT_TOKEN,
        ref: str = "fakeref",
    ) -> None:
        super().__init__()
        self.anon_key = anon_key
        self.service_key = service_key
        self.management_token = management_token
        self.ref = ref
        self.tables: dict[str, Table] = {}
        self.functions: dict[str, Any] = {}
        self.services: dict[str, str] = {s: "ACTIVE_HEALTHY" for s in ("auth", "db", "rest", "storage", "realtime")}
        self.backups: list[Row] = []
        self.pitr_enabled = False
        self.storage_healthy = True
        self._ids = itertools.count(1)
        r = self.app.router
        r.add_get("/auth/v1/health", self._auth_health)
        r.add_get("/storage/v1/health", self._storage_health)
        r.add_route("*", "/rest/v1/rpc/{fn}", self._rpc)
        r.add_get("/rest/v1/{table}", self._table)  # add_get also answers HEAD
        r.add_get("/v1/projects/{ref}/health", self._mgmt_health)
        r.add_get("/v1/projects/{ref}/database/backups", self._mgmt_backups)

    # -- scripting ---------------------------------------------------------------------------

    def add_table(self, name: str, rows: int = 0, *, rls: bool = True, anon_grant: bool = True) -> Table:
        table = Table([{"id": i + 1, "note": f"row {i + 1}"} for i in range(rows)], rls, anon_grant)
        self.tables[name] = table
        return table

    def delete_rows(self, name: str, count: int) -> None:
        del self.tables[name].rows[:count]

    def drop_table(self, name: str) -> None:
        del self.tables[name]

    def add_backup(self, status: str, at: float, *, physical: bool = True) -> Row:
        backup = {"id": next(self._ids), "is_physical_backup": physical, "status": status, "inserted_at": _iso(at)}
        self.backups.append(backup)
        return backup

    def set_migration_version(self, version: str, view: str = "schema_migrations", fn: str = "applied_version") -> None:
        """What the migrations view (newest row) and RPC report as the applied version."""
        self.tables[view] = Table([{"version": version}], rls=False)
        self.functions[fn] = version

    # -- wire format ---------------------------------------------------------------------------

    def error_body(self, status: int) -> dict[str, object]:
        if status == 429:
            return {"message": "Too Many Requests"}
        return {"message": "An invalid response was received from the upstream server"}

    def _role(self, request: web.Request) -> str | web.Response:
        key = request.headers.get("apikey") or request.query.get("apikey")
        if not key:
            return web.json_response(
                {
                    "message": "No API key found in request",
                    "hint": "No `apikey` request header or url param was found.",
                },
                status=401,
            )
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if key == self.service_key and bearer in ("", self.service_key):
            return "service_role"
        if key == self.anon_key and bearer in ("", self.anon_key):
            return "anon"
        return web.json_response(
            {"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."},
            status=401,
        )

    async def _auth_health(self, request: web.Request) -> web.Response:
        role = self._role(request)
        if isinstance(role, web.Response):
            return role
        return web.json_response(
            {
                "version": "v2.170.0",
                "name": "GoTrue",
                "description": "GoTrue is a user registration and authentication API",
            }
        )

    async def _storage_health(self, request: web.Request) -> web.Response:
        role = self._role(request)
        if isinstance(role, web.Response):
            return role
        return web.json_response({"healthy": self.storage_healthy})

    async def _table(self, request: web.Request) -> web.StreamResponse:
        role = self._role(request)
        if isinstance(role, web.Response):
            return role
        name = request.match_info["table"]
        table = self.tables.get(name)
        if table is None:
            return web.json_response(
                {
                    "code": "PGRST205",
                    "details": None,
                    "hint": None,
                    "message": f"Could not find the table 'public.{name}' in the schema cache",
                },
                status=404,
            )
        if role == "anon" and not table.anon_grant:
            return web.json_response(
                {"code": "42501", "details": None, "hint": None, "message": f"permission denied for table {name}"},
                status=401,
            )
        rows = [] if role == "anon" and table.rls else list(table.rows)
        return self._rows(request, rows)

    def _rows(self, request: web.Request, rows: list[Row]) -> web.Response:
        order = request.query.get("order")
        if order:
            column, _, direction = order.partition(".")
            rows.sort(key=lambda r: str(r.get(column, "")), reverse=direction == "desc")
        total = len(rows)
        start, end = 0, total - 1
        if "Range" in request.headers:
            lo, _, hi = request.headers["Range"].partition("-")
            start, end = int(lo or 0), min(int(hi) if hi else total - 1, total - 1)
        if "limit" in request.query:
            end = min(end, start + int(request.query["limit"]) - 1)
        page = rows[start : end + 1]
        counted = "count=exact" in request.headers.get("Prefer", "")
        shown_total = str(total) if counted else "*"
        content_range = f"{start}-{start + len(page) - 1}/{shown_total}" if page else f"*/{shown_total}"
        status = 206 if page and len(page) < total and counted else 200
        return web.json_response(page, status=status, headers={"Content-Range": content_range})

    async def _rpc(self, request: web.Request) -> web.Response:
        role = self._role(request)
        if isinstance(role, web.Response):
            return role
        fn = request.match_info["fn"]
        if fn not in self.functions:
            return web.json_response(
                {
                    "code": "PGRST202",
                    "details": "Searched for the function public.{fn} without parameters",
                    "hint": None,
                    "message": f"Could not find the function public.{fn} without parameters in the schema cache",
                },
                status=404,
            )
        return web.json_response(self.functions[fn])

    def _management(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization", "") != f"Bearer {self.management_token}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        if request.match_info["ref"] != self.ref:
            return web.json_response({"message": "Project not found"}, status=404)
        return None

    async def _mgmt_health(self, request: web.Request) -> web.Response:
        refused = self._management(request)
        if refused is not None:
            return refused
        wanted = [s for v in request.query.getall("services", []) for s in v.split(",") if s]
        if not wanted:
            return web.json_response({"message": "services is required"}, status=400)
        out = []
        for name in wanted:
            status = self.services.get(name, "UNHEALTHY")
            item: Row = {"name": name, "healthy": status == "ACTIVE_HEALTHY", "status": status}
            if status == "UNHEALTHY":
                item["error"] = f"{name} is not responding"
            out.append(item)
        return web.json_response(out)

    async def _mgmt_backups(self, request: web.Request) -> web.Response:
        refused = self._management(request)
        if refused is not None:
            return refused
        body = {
            "region": "us-east-1",
            "walg_enabled": True,
            "pitr_enabled": self.pitr_enabled,
            "backups": self.backups,
            "physical_backup_data": {},
        }
        return web.json_response(body)
