"""The scheduler spreads first probes (small configs at once, large ones over the interval) and batches wake-ups."""

from __future__ import annotations

import asyncio

from monitor.clock import FakeClock, SystemClock
from monitor.config import Check
from monitor.scheduler import MAX_START_JITTER, QUANTUM, Scheduler


def checks(n: int, interval: float = 30.0) -> list[Check]:
    return [
        Check(
            site=f"s{i}",
            client="c",
            name="http",
            type="http",
            params=None,
            interval=interval,
            timeout=1.0,
            failure_threshold=3,
            success_threshold=2,
        )
        for i in range(n)
    ]


def scheduler(items: list[Check]) -> Scheduler:
    return Scheduler(items, lambda _c: None, clock=SystemClock(), max_concurrency=8, on_lag=lambda _l: None, seed=1)


def test_a_small_config_starts_within_the_jitter() -> None:
    """Five checks at 30s all get their first probe within MAX_START_JITTER."""
    items = checks(5)
    s = scheduler(items)
    assert all(0 <= s.first_delay(c) <= MAX_START_JITTER for c in items)


def test_ten_thousand_checks_spread_over_the_interval() -> None:
    """10,000 checks at 30s: first probes cover the whole interval, no second holds more than ~2x its share."""
    items = checks(10_000)
    s = scheduler(items)
    delays = [s.first_delay(c) for c in items]
    assert max(delays) <= 30.0
    assert max(delays) > 29.0
    per_second = [0] * 30
    for d in delays:
        per_second[min(29, int(d))] += 1
    assert max(per_second) < 2 * 10_000 / 30


def test_the_spread_never_exceeds_a_short_interval() -> None:
    """A 1s check among 10,000 still starts within its own interval."""
    items = [*checks(9_999), *checks(1, interval=1.0)]
    s = scheduler(items)
    assert s.first_delay(items[-1]) <= 1.0


async def test_wakeups_are_batched_on_the_quantum_grid() -> None:
    """Probes wake on a QUANTUM grid (fewer loop passes, less CPU per probe) and start at most QUANTUM late."""
    clock = FakeClock()
    lags: list[float] = []
    started: list[float] = []

    async def run(_check: Check) -> None:
        started.append(clock.monotonic())

    items = checks(200, interval=1.0)
    s = Scheduler(items, run, clock=clock, max_concurrency=256, on_lag=lags.append, seed=2)
    s.start()
    await asyncio.sleep(0)
    wakes = [when for when, _ in clock._sleepers]
    assert all(abs(w / QUANTUM - round(w / QUANTUM)) < 1e-6 for w in wakes)
    step = QUANTUM / 5
    for _ in range(int(3 / step)):
        await clock.advance(step)
    await s.stop()
    assert len(started) >= 2 * 200
    assert max(lags) <= QUANTUM + step + 1e-9
    assert len(set(started)) <= 3 / QUANTUM + 1
