"""A Stripe API: balance, charges, refunds, disputes and payouts as Stripe list objects.

Lists are newest first and honour `created[gte|gt|lte|lt]`, `limit` (1..100, default 10),
`starting_after`, and `status` for payouts. Keys travel as `Authorization: Bearer sk_…`
(or Basic with the key as user); a missing or unknown key is a 401 in Stripe's error
format. `send_event` delivers a signed webhook the way Stripe does.
"""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from monitor.fakes import FakeServer
from monitor.stripe_webhooks import sign

Obj = dict[str, Any]


def _error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None) -> web.Response:
    error: Obj = {"type": type_, "message": message}
    if code:
        error["code"] = code
    return web.json_response({"error": error}, status=status)


class FakeStripe(FakeServer):
    def __init__(self, api_key: str = "rk_test_fakeRestrictedKey000000000000", now: float | None = None) -> None:
        super().__init__()
        self.api_keys = {api_key}
        self.now = now  # None: the real clock; set for tests on a FakeClock
        self.objects: dict[str, list[Obj]] = {"charges": [], "refunds": [], "disputes": [], "payouts": []}
        self._ids = itertools.count(1)
        self.app.router.add_get("/v1/balance", self._balance)
        for kind in self.objects:
            self.app.router.add_get(f"/v1/{kind}", self._lister(kind))

    # -- scripting ---------------------------------------------------------------------------

    def clock(self) -> float:
        return self.now if self.now is not None else time.time()

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}FAKE"

    def add_charge(
        self,
        amount: int,
        currency: str = "usd",
        *,
        customer: str | None = "cus_FAKE0001",
        payment_method: str | None = "pm_FAKE0001",
        status: str = "succeeded",
        age: float = 60.0,
    ) -> Obj:
        """A charge created `age` seconds ago; returns it (its `id` is what findings name)."""
        charge: Obj = {
            "id": self._new_id("ch"),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount if status == "succeeded" else 0,
            "amount_refunded": 0,
            "captured": status == "succeeded",
            "created": int(self.clock() - age),
            "currency": currency,
            "customer": customer,
            "livemode": False,
            "paid": status == "succeeded",
            "payment_method": payment_method,
            "refunded": False,
            "disputed": False,
            "status": status,
            "failure_code": "card_declined" if status == "failed" else None,
        }
        self.objects["charges"].append(charge)
        return charge

    def add_duplicate(self, charge: Obj, after: float = 20.0) -> Obj:
        """The same customer, payment method, amount and currency charged again `after` s later."""
        age = self.clock() - charge["created"] - after
        return self.add_charge(
            charge["amount"],
            charge["currency"],
            customer=charge["customer"],
            payment_method=charge["payment_method"],
            age=max(0.0, age),
        )

    def add_refund(self, charge: Obj, age: float = 30.0) -> Obj:
        refund: Obj = {
            "id": self._new_id("re"),
            "object": "refund",
            "amount": charge["amount"],
            "charge": charge["id"],
            "currency": charge["currency"],
            "created": int(self.clock() - age),
            "status": "succeeded",
        }
        self.objects["refunds"].append(refund)
        return refund

    def add_dispute(self, charge: Obj, age: float = 30.0, reason: str = "fraudulent") -> Obj:
        dispute: Obj = {
            "id": self._new_id("dp"),
            "object": "dispute",
            "amount": charge["amount"],
            "charge": charge["id"],
            "currency": charge["currency"],
            "created": int(self.clock() - age),
            "reason": reason,
            "status": "needs_response",
        }
        self.objects["disputes"].append(dispute)
        return dispute

    def add_payout(self, amount: int, status: str = "paid", age: float = 30.0) -> Obj:
        payout: Obj = {
            "id": self._new_id("po"),
            "object": "payout",
            "amount": amount,
            "currency": "usd",
            "created": int(self.clock() - age),
            "arrival_date": int(self.clock() + 86400),
            "status": status,
            "failure_code": "account_closed" if status == "failed" else None,
            "failure_message": "The bank account has been closed." if status == "failed" else None,
        }
        self.objects["payouts"].append(payout)
        return payout

    def event(self, type_: str, obj: Obj) -> Obj:
        """A Stripe event object wrapping `obj`."""
        return {
            "id": self._new_id("evt"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(self.clock()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": type_,
            "data": {"object": obj},
        }

    @staticmethod
    async def send_event(
        session: aiohttp.ClientSession, url: str, event: Obj, secret: str, timestamp: int | None = None
    ) -> tuple[int, Any]:
        """POST a signed event to a webhook endpoint (on 127.0.0.1); (status, JSON answer)."""
        payload = orjson.dumps(event)
        header = sign(payload, secret, int(time.time()) if timestamp is None else timestamp)
        headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
        async with session.post(url, data=payload, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    # -- wire format ---------------------------------------------------------------------------

    def error_body(self, status: int) -> dict[str, object]:
        if status == 429:
            message = "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
            return {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": message}}
        if status >= 500:
            return {"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}
        return {"error": {"type": "invalid_request_error", "message": f"Request failed with status {status}."}}

    def _key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:].strip()
        if auth.startswith("Basic "):
            try:
                return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except ValueError:
                return ""
        return None

    def _authorize(self, request: web.Request) -> web.Response | None:
        key = self._key(request)
        if key is None:
            return _error(
                401, "You did not provide an API key. You need to provide your API key in the Authorization header."
            )
        if key not in self.api_keys:
            shown = f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"
            return _error(401, f"Invalid API Key provided: {shown}")
        return None

    async def _balance(self, request: web.Request) -> web.Response:
        refused = self._authorize(request)
        if refused is not None:
            return refused
        funds = [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]
        return web.json_response({"object": "balance", "available": funds, "pending": funds, "livemode": False})

    def _lister(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            refused = self._authorize(request)
            if refused is not None:
                return refused
            return self._list(kind, request)

        return handler

    def _list(self, kind: str, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "10"))
            bounds = {op: int(q[f"created[{op}]"]) for op in ("gte", "gt", "lte", "lt") if f"created[{op}]" in q}
        except ValueError:
            return _error(400, "Invalid integer in query.")
        if not 1 <= limit <= 100:
            return _error(400, "Invalid limit: must be between 1 and 100.", code="parameter_invalid_integer")
        items = sorted(self.objects[kind], key=lambda o: (o["created"], o["id"]), reverse=True)
        items = [o for o in items if _created_ok(o["created"], bounds)]
        if "status" in q:
            items = [o for o in items if o.get("status") == q["status"]]
        after = q.get("starting_after")
        if after:
            ids = [o["id"] for o in items]
            if after not in ids:
                return _error(400, f"No such {kind[:-1]}: '{after}'", code="resource_missing")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return web.json_response({"object": "list", "url": f"/v1/{kind}", "has_more": len(items) > limit, "data": page})


def _created_ok(created: int, bounds: dict[str, int]) -> bool:
    checks = {
        "gte": lambda b: created >= b,
        "gt": lambda b: created > b,
        "lte": lambda b: created <= b,
        "lt": lambda b: created < b,
    }
    return all(checks[op](value) for op, value in bounds.items())
