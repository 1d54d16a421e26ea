"""What the platform checks (statuspage, supabase, stripe, secrets) share.

- `answer_failure(resp)`: a platform API's non-2xx answer as a classified ProbeFailure
  (401/403 -> auth, 429 -> bad_status with its Retry-After, 5xx -> bad_status), its error
  message scrubbed of anything that looks like a credential.
- `Backoff`: after a 429, the check does not call the API again before Retry-After has
  passed; it keeps reporting the rate limit instead of hammering.
- `scrub(text)`: every credential-looking token replaced by its fingerprint.
- `Fraction`: `0.2` or `"20%"` in YAML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import yaml

from monitor.conditions import API_FAILURE
from monitor.probes import ProbeContext
from monitor.probes._errors import ProbeFailure, classify
from monitor.probes._http import Response
from monitor.redact import fingerprint
from monitor.results import FailureKind, ProbeResult, Problem, Severity
from monitor.schema import Reader

# Anything that must never be echoed from an API answer (Stripe echoes part of a bad key).
_CREDENTIAL = re.compile(
    r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z*]{4,}"
    r"|whsec_[0-9A-Za-z]{8,}"
    r"|sb_(?:secret|publishable)_[0-9A-Za-z_-]{8,}"
    r"|sbp_[0-9A-Za-z_]{16,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|eyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]*"
)
_MAX_MESSAGE = 160
DEFAULT_RETRY_AFTER = 60.0
_BACKOFF_KEY = "platform.backoff_until"


def scrub(text: str) -> str:
    """`text` with every credential-looking token replaced by its fingerprint."""
    return _CREDENTIAL.sub(lambda m: fingerprint(m.group(0)), text)


def error_message(resp: Response) -> str:
    """The human message of a JSON error body (Stripe, PostgREST, Supabase), scrubbed."""
    try:
        doc = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(doc, Mapping) and isinstance(doc.get("error"), Mapping):
        doc = doc["error"]
    if not isinstance(doc, Mapping):
        return ""
    message = doc.get("message") or doc.get("msg") or doc.get("error_description") or ""
    code = doc.get("code")
    text = f"{message} ({code})" if code and message else str(message)
    return scrub(text)[:_MAX_MESSAGE]


def retry_after(resp: Response, now: float) -> float:
    """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date)."""
    value = resp.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return DEFAULT_RETRY_AFTER


class RateLimited(ProbeFailure):
    """A 429: `wait` seconds before the API should be called again."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(FailureKind.BAD_STATUS, message)
        self.wait = wait


def answer_failure(resp: Response, what: str, now: float) -> ProbeFailure:
    """The ProbeFailure for a non-2xx answer from `what` (e.g. "GET /v1/charges")."""
    status = resp.status
    detail = error_message(resp)
    said = f": {detail}" if detail else ""
    if status == 429:
        wait = retry_after(resp, now)
        return RateLimited(f"{what} was rate limited (429); retrying after {wait:.0f}s", wait)
    if status in (401, 403):
        return ProbeFailure(FailureKind.AUTH, f"{what} refused the credentials ({status}){said}")
    return ProbeFailure(FailureKind.BAD_STATUS, f"{what} answered {status}{said}")


def expect_ok(resp: Response, what: str, now: float) -> None:
    if not 200 <= resp.status < 300:
        raise answer_failure(resp, what, now)


def json_of(resp: Response, what: str) -> Any:
    try:
        return resp.json()
    except ProbeFailure as exc:
        raise ProbeFailure(exc.kind, f"{what} {exc.message}") from exc


def failed(
    exc: BaseException,
    where: str,
    ctx: ProbeContext,
    *,
    condition: str = API_FAILURE,
    severity: Severity | None = None,
) -> Problem:
    """A transport error or ProbeFailure while calling a platform API, as one Problem."""
    kind, sentence = classify(exc, timeout=ctx.timeout)
    return Problem(condition=condition, kind=kind, severity=severity, summary=f"{where} {sentence}")


class Backoff:
    """Honours Retry-After across probes (and restarts: it lives in ctx.state)."""

    def __init__(self, ctx: ProbeContext) -> None:
        self.ctx = ctx

    async def waiting(self) -> float:
        """Seconds left before the API may be called again (0 when free to call)."""
        until = await self.ctx.state.get(_BACKOFF_KEY)
        left = float(until) - self.ctx.clock.now() if isinstance(until, int | float) else 0.0
        return max(0.0, left)

    async def start(self, seconds: float) -> None:
        await self.ctx.state.put(_BACKOFF_KEY, self.ctx.clock.now() + seconds)

    def still_limited(self, where: str, left: float) -> ProbeResult:
        problem = Problem(
            condition=API_FAILURE,
            kind=FailureKind.BAD_STATUS,
            summary=f"{where} is rate limiting us (429); not calling it for another {left:.0f}s",
        )
        return ProbeResult(duration=0.0, problems=(problem,), detail="backing off after a 429")


@dataclass(frozen=True, slots=True)
class Fraction:
    """A share between 0 and 1, written `0.2` or `"20%"`."""

    value: float

    @classmethod
    def parse(cls, raw: object) -> Fraction:
        if isinstance(raw, bool):
            raise ValueError(raw)
        if isinstance(raw, int | float):
            value = float(raw)
        elif isinstance(raw, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", raw):
            value = float(raw.strip().rstrip("%")) / 100
        elif isinstance(raw, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", raw):
            value = float(raw)
        else:
            raise ValueError(raw)
        if not 0.0 <= value <= 1.0:
            raise ValueError(raw)
        return cls(value)

    @classmethod
    def from_yaml(cls, reader: Reader, node: yaml.Node, path: str) -> Fraction | None:
        got = reader.scalar(node, path)
        if got is None:
            return None
        try:
            return cls.parse(got[0])
        except ValueError:
            shown = f"the value of ${{{got[1]}}}" if got[1] else repr(got[0])
            reader.error(node, path, f"expected a fraction like 0.2 or '20%', got {shown}")
            return None

    def __str__(self) -> str:
        return f"{self.value * 100:g}%"
