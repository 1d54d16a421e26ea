"""The probe registry: one file per check type, found by name.

A probe module declares a frozen params dataclass (its YAML keys) and registers
an async function under the check's `type:`:

    @dataclass(frozen=True, slots=True, kw_only=True)
    class TlsCheck:
        url: HttpUrl
        warn_days: int = 14

    @register("tls", TlsCheck)
    async def probe_tls(check: TlsCheck, ctx: ProbeContext) -> ProbeResult: ...

Probes never raise for a target's misbehaviour: they return a ProbeResult whose
problems are classified (see _errors.py). Anything that still escapes is caught
by the scheduler and recorded as FailureKind.ERROR.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp

from monitor.clock import Clock
from monitor.results import ProbeResult

P = TypeVar("P")

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: plenty for a health page, harmless for a hostile one


class ProbeState(Protocol):
    """Small durable memory a probe keeps between runs (row counts, judged charge ids).

    Values are JSON-serialisable; scoped to one (site, check); survives restarts.
    """

    async def get(self, key: str) -> Any: ...

    async def put(self, key: str, value: Any) -> None: ...


@dataclass(slots=True, kw_only=True)
class ProbeContext:
    site: str
    check: str
    timeout: float
    session: aiohttp.ClientSession
    clock: Clock
    state: ProbeState
    max_body: int = DEFAULT_MAX_BODY


ProbeFn = Callable[[Any, ProbeContext], Awaitable[ProbeResult]]


@dataclass(frozen=True, slots=True)
class ProbeType:
    name: str
    params: type
    run: ProbeFn

    def target(self, params: object) -> str:
        """What the check looks at, for tables and the status page (never with secrets)."""
        from monitor.redact import safe_url

        for attr in ("url", "project_url", "api_base"):
            value = getattr(params, attr, None)
            if isinstance(value, str):
                return safe_url(value)
        return self.name


PROBES: dict[str, ProbeType] = {}


def register(
    name: str, params: type
) -> Callable[
    [Callable[[P, ProbeContext], Awaitable[ProbeResult]]], Callable[[P, ProbeContext], Awaitable[ProbeResult]]
]:
    """Register a probe function for checks with `type: name`."""

    def deco(
        fn: Callable[[P, ProbeContext], Awaitable[ProbeResult]],
    ) -> Callable[[P, ProbeContext], Awaitable[ProbeResult]]:
        if name in PROBES and PROBES[name].run is not fn:
            raise RuntimeError(f"probe type {name!r} registered twice")
        PROBES[name] = ProbeType(name, params, fn)
        return fn

    return deco


def load_all() -> dict[str, ProbeType]:
    """Import every probe module in this package once; return the registry."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return PROBES
