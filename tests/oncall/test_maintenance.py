"""Maintenance windows and runtime silences: probes go on, no incident opens, nobody is paged."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.clock import FakeClock
from monitor.maintenance import Maintenance, MaintenanceWindow
from monitor.metrics import EngineCollector
from monitor.schema import Duration
from tests.oncall.conftest import down, fail_site, rows

BERLIN = ZoneInfo("Europe/Berlin")


def ts(*args: int, tz: ZoneInfo | None = None) -> float:
    return datetime(*args, tzinfo=tz or UTC).timestamp()  # type: ignore[misc]


def test_one_off_window_covers_start_to_end_for_its_sites() -> None:
    """A one-off window is active from start (inclusive) to end (exclusive), only for its sites."""
    w = MaintenanceWindow(sites=("acme-shop",), start=ts(2026, 3, 1, 22), end=ts(2026, 3, 1, 23))  # type: ignore[arg-type]
    m = Maintenance((w,))
    assert m.is_silenced("acme-shop", ts(2026, 3, 1, 22))
    assert not m.is_silenced("acme-shop", ts(2026, 3, 1, 23))
    assert not m.is_silenced("globex", ts(2026, 3, 1, 22, 30))


def test_recurring_window_follows_local_time_across_dst_and_midnight() -> None:
    """Sat 23:00 Europe/Berlin for 2h: covers Sunday 00:30 local, in winter and in summer time."""
    w = MaintenanceWindow(days=("sat",), time="23:00", duration=Duration(7200), timezone="Europe/Berlin")
    m = Maintenance((w,))
    assert m.is_silenced("any", ts(2026, 1, 11, 0, 30, tz=BERLIN))  # Sunday, CET
    assert m.is_silenced("any", ts(2026, 7, 12, 0, 30, tz=BERLIN))  # Sunday, CEST
    assert not m.is_silenced("any", ts(2026, 7, 12, 1, 0, tz=BERLIN))
    assert not m.is_silenced("any", ts(2026, 7, 11, 0, 30, tz=BERLIN))  # Saturday morning
    assert "until" in (m.why("any", ts(2026, 7, 11, 23, 0, tz=BERLIN)) or "")


def test_maintenance_config_is_validated(oncall_config) -> None:
    """Unknown sites, bad times and zones are config errors naming the key."""
    from monitor.errors import ConfigError

    bad = 'maintenance:\n  - {days: [caturday], time: "25:61", duration: 1h, timezone: Mars/Olympus}\n'
    with pytest.raises(ConfigError) as err:
        oncall_config(extra=bad)
    for needle in ("maintenance[0].time", "maintenance[0].timezone", "maintenance[0].days"):
        assert needle in str(err.value)
    unknown = "maintenance:\n  - {sites: [acme-shp], start: 2026-03-01T22:00:00Z, end: 2026-03-01T23:00:00Z}\n"
    with pytest.raises(ConfigError) as err:
        oncall_config(extra=unknown)
    assert "maintenance[0].sites[0]: unknown site 'acme-shp' (did you mean 'acme-shop'?)" in str(err.value)


async def test_no_incident_opens_during_a_window_but_probes_and_metrics_go_on(start_engine, oncall_config) -> None:
    """A global window: the failing probe is recorded and counted, no incident, no page; gauge is 1."""
    clock = FakeClock()
    now = clock.now()
    start = datetime.fromtimestamp(now - 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = datetime.fromtimestamp(now + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = f"maintenance:\n  - {{name: upgrade, start: {start}, end: {end}}}\n"
    engine = await start_engine(oncall_config(extra=extra), clock)
    check = engine.config.checks[0]
    await engine.handle_result(check, down())
    assert engine.open == {}
    assert await rows(engine) == []
    assert engine.views["acme-shop/http"].last is not None
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    text = generate_latest(registry).decode()
    assert 'monitor_site_maintenance{site="acme-shop"} 1.0' in text
    assert 'monitor_probes_total{check="http",result="bad_status",site="acme-shop"} 1.0' in text
    await clock.advance(3600)  # the window ends with the site still failing: now it opens and pages
    await engine.tick()
    assert [i.site for i in engine.open.values()] == ["acme-shop"]
    assert {r.recipient for r in await rows(engine)} == {"owen", "derek"}


async def test_runtime_silence_survives_restart_and_pauses_escalation(start_engine, oncall_config) -> None:
    """silence_site: stored durably, open incidents stop escalating, new ones do not open; it expires."""
    clock = FakeClock()
    config = oncall_config()
    engine = await start_engine(config, clock)
    iid = await fail_site(engine, "acme-shop")
    answer = await engine.silence_site("acme-shop", "owen", "failover drill", "1h")
    assert answer["site"] == "acme-shop"
    assert answer["by"] == "owen"
    assert answer["until"] is not None
    assert engine.open[iid].timeline[-1].event == "silenced"
    await engine.stop()

    again = await start_engine(config, clock)
    assert again.is_silenced("acme-shop", clock.now())
    assert not again.is_silenced("globex", clock.now())
    await clock.advance(600)
    await again.tick()
    assert [r for r in await rows(again) if r.event == "escalated"] == []
    assert again.maintenance_view()["sites"]["acme-shop"].startswith("silenced by @owen")
    await clock.advance(3000)  # past the hour: escalation resumes at once
    await again.tick()
    assert [r.recipient for r in await rows(again) if r.event == "escalated" and r.channel == "hook"] == ["marcus"]


async def test_silence_refuses_unknown_sites_and_bad_durations(start_engine, oncall_config) -> None:
    """Unknown site: KeyError (404); a duration of 0 or over 7d: ValueError (400); unsilence ends it."""
    engine = await start_engine(oncall_config(), FakeClock())
    with pytest.raises(KeyError):
        await engine.silence_site("nowhere", "owen", "x", 60)
    for bad in (0, "8d", "soon"):
        with pytest.raises(ValueError, match=r"."):
            await engine.silence_site("globex", "owen", "x", bad)
    await engine.silence_site("*", "owen", "all hands", "10m")
    assert engine.is_silenced("globex", engine.clock.now())
    ended = await engine.unsilence_site("*", "owen")
    assert len(ended) == 1
    assert not engine.is_silenced("globex", engine.clock.now())
