"""One loop per check on the monotonic clock: first probe at start (jittered), then every
interval, a global concurrency bound, and the lag of every start measured.

A probe that overruns its slot never stacks up: missed slots are skipped, not
replayed, so a slow target cannot make the scheduler fall further behind.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from monitor.clock import Clock
from monitor.config import Check

log = logging.getLogger(__name__)

MAX_START_JITTER = 2.0  # seconds; spreads the first probes without delaying them much
QUANTUM = 0.025  # seconds; batching wake-ups costs up to this much lag and saves CPU per probe
START_RATE = 200.0  # first probes per second at most: 10,000 checks spread over (up to) an interval


class Scheduler:
    def __init__(
        self,
        checks: Sequence[Check],
        run: Callable[[Check], Awaitable[object]],
        *,
        clock: Clock,
        max_concurrency: int,
        on_lag: Callable[[float], None],
        seed: int | None = None,
        should_run: Callable[[Check], bool] | None = None,
    ) -> None:
        self.checks = list(checks)
        self.run = run
        self.clock = clock
        self.on_lag = on_lag
        self.slots = asyncio.Semaphore(max_concurrency)
        self.random = random.Random(seed)
        self.tasks: list[asyncio.Task[None]] = []
        # With replicas (cluster.py) each loop runs everywhere but probes only where this replica owns the check.
        self.should_run = should_run or (lambda _check: True)

    def start(self) -> None:
        for check in self.checks:
            self.tasks.append(asyncio.create_task(self._loop(check), name=f"probe {check.key}"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    def first_delay(self, check: Check) -> float:
        """A small config starts at once; a large one spreads its first round, and so every later
        round (phases are kept), over up to one interval instead of firing all checks together."""
        spread = max(len(self.checks) / START_RATE, min(MAX_START_JITTER, check.interval / 10))
        return self.random.uniform(0, min(spread, check.interval))

    async def _loop(self, check: Check) -> None:
        due = self.clock.monotonic() + self.first_delay(check)
        while True:
            wait = due - self.clock.monotonic()
            if wait > 0:  # wake on the QUANTUM grid: probes due close together start in one loop pass
                await self.clock.sleep(wait + (-due) % QUANTUM)
            if not self.should_run(check):
                due += check.interval
                continue
            async with self.slots:
                started = self.clock.monotonic()
                self.on_lag(max(0.0, started - due))
                try:
                    await self.run(check)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("probe loop error", extra={"site": check.site, "check": check.name})
            due += check.interval
            now = self.clock.monotonic()
            if now > due:  # overran: skip the missed slots, keep the phase
                due += ((now - due) // check.interval + 1) * check.interval
