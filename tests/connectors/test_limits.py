"""Rate and concurrency limits applied by the registry around a connector's send."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from connectors.base import DeliveryReceipt, OutboundMessage, SendLimits
from connectors.limits import LimitedConnector, TokenBucket
from connectors.registry import ConnectorRegistry, ConnectorSettings, LimitSettings


def test_the_bucket_spends_its_burst_then_spaces_tokens_by_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])
    now[0] += 1.0  # a quiet second refills the burst, never more
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


class Slow:
    name = "slow"

    def __init__(self) -> None:
        self.active = 0
        self.most = 0

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.active += 1
        self.most = max(self.most, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        return DeliveryReceipt(message.send_key, datetime.now(UTC))

    async def aclose(self) -> None:
        pass


async def test_concurrency_is_bounded() -> None:
    inner = Slow()
    limited = LimitedConnector(inner, SendLimits(max_concurrency=3))
    messages = [OutboundMessage(f"k{i}", "x", "to", {"text": "t"}) for i in range(20)]
    await asyncio.gather(*(limited.send(m) for m in messages))
    assert inner.most == 3


async def test_the_registry_wraps_a_connector_by_its_limits_and_env_overrides(
    http_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEY_SMS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("JOURNEY_SMS_ACCESS_KEY_SECRET", "secret")
    monkeypatch.setenv("JOURNEY_SMS_SIGN_NAME", "鲜果铺")
    monkeypatch.setenv("JOURNEY_SMS_RATE_PER_SECOND", "25")
    registry = ConnectorRegistry.from_settings(
        ConnectorSettings(channels={"sms": "sms", "console": "console"}), http_client
    )
    sms = registry.for_channel("sms")
    assert isinstance(sms, LimitedConnector)
    assert sms.limits == SendLimits(rate_per_second=25)
    assert not isinstance(registry.for_channel("console"), LimitedConnector)

    override = ConnectorSettings(
        channels={"sms": "sms"}, limits={"sms": LimitSettings(max_concurrency=2)}
    )
    sms = ConnectorRegistry.from_settings(override, http_client).for_channel("sms")
    assert isinstance(sms, LimitedConnector)
    assert sms.limits == SendLimits(max_concurrency=2)
