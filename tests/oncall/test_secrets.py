"""The shared notifier kit: every channel is registered in shape and leaks no secret anywhere."""

from __future__ import annotations

import dataclasses
import logging

import orjson
import pytest

from monitor import notify
from monitor.clock import FakeClock
from monitor.store.codec import outbox_to_json
from tests.oncall.conftest import SECRETS, Reply, fail_site, flush, rows

KIND_OF = {"hook": "hook", "slack": "slack", "pager": "pd", "am": "am"}


def test_every_channel_is_registered_with_a_frozen_params_class() -> None:
    """Registry key == file name; params are frozen dataclasses; the factory returns a Channel."""
    registry = notify.load_all()
    assert {"webhook", "slack", "pagerduty", "alertmanager"} <= set(registry)
    for name, kind in registry.items():
        assert kind.name == name
        assert dataclasses.is_dataclass(kind.params)
        assert kind.params.__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("channel", sorted(KIND_OF))
@pytest.mark.parametrize("status", [400, 500])
async def test_no_secret_in_logs_rows_reasons_or_labels(
    start_engine, oncall_config, receiver, caplog, channel: str, status: int
) -> None:
    """A receiver that echoes the request back in its error: the secret never reaches us anywhere."""
    caplog.set_level(logging.DEBUG)
    receiver.echo_4xx = True
    receiver.fail(KIND_OF[channel], *[Reply(status)] * 50)
    clock = FakeClock()
    engine = await start_engine(oncall_config(), clock)
    await fail_site(engine, "acme-shop")
    await fail_site(engine, "hooli", "financial_error")  # jonny: pager + am at once
    for _ in range(3):
        await flush(engine)
        await clock.advance(120)
    await flush(engine)
    mine = [r for r in await rows(engine) if r.channel == channel]
    assert mine
    assert any(r.last_error.startswith(f"http_{status}") for r in mine)
    if status == 400:
        assert all(r.status == "failed" for r in mine)
    haystack = "\n".join(
        [
            caplog.text,
            orjson.dumps([outbox_to_json(r) for r in await rows(engine)]).decode(),
            repr(dict(engine.telemetry.notifications)),
            repr(engine.config),
            orjson.dumps(engine.status()).decode(),
        ]
    )
    for name, secret in SECRETS.items():
        assert secret not in haystack, f"{name} leaked"
    assert any(secret in s.raw.decode() + s.path_qs for s in receiver.seen for secret in SECRETS.values())
