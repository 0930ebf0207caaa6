"""The send activity keeps each connector's declared delivery guarantee (real Redis caps, SQLite,
the activity in Temporal's activity environment): an at-most-once send is on record before the
provider call and is never handed over twice; an idempotent one costs no extra write."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from ruamel.yaml import YAML
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from connectors.base import (
    DeliveryGuarantee,
    DeliveryReceipt,
    OutboundMessage,
    RetryableSendError,
)
from connectors.registry import ConnectorRegistry, ConnectorSettings, LimitSettings
from engine.activities.journey import JourneyActivities
from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.domain import Delivery
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.services.deploy import deploy_journey
from engine.store import Store
from engine.workflow.messages import SendInput
from tests.harness import RedisServer, person, sqlite_store

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ONE_A_DAY = Policy.model_validate({"caps": {"global": [{"max": 1, "per": "1d"}]}})


@dataclass
class Probe:
    """A connector that notes what the delivery log said while it was being called, and fails
    with ``errors`` (in order) before it accepts."""

    store: Store
    delivery: DeliveryGuarantee
    errors: list[RetryableSendError] = field(default_factory=list)
    gate: asyncio.Event | None = None
    """When given, each call waits for it before answering."""
    name: str = "probe"
    seen: list[str | None] = field(default_factory=list)
    """The send key's delivery status during each call (None: no row)."""

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        row = await self.store.get_delivery(message.send_key)
        self.seen.append(None if row is None else row.status)
        if self.gate is not None:
            await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        return DeliveryReceipt(f"probe-{len(self.seen)}", datetime.now(UTC))

    async def aclose(self) -> None:
        return None


@dataclass
class Parts:
    store: Store
    caps: RedisCapService
    http: httpx.AsyncClient
    journey_id: str
    version: int
    profile_id: str
    """Prefix of the three people's ids."""

    def activities(self, connector: Probe, **limits: LimitSettings) -> JourneyActivities:
        registry = ConnectorRegistry(
            ConnectorSettings(channels={"sms": "probe"}, limits=limits),
            self.http,
            {"probe": lambda settings, client: connector},
        )
        return JourneyActivities(self.store, self.caps, registry)

    def send(self, person: int = 0) -> SendInput:
        return SendInput(
            send_key=f"{uuid.uuid4().hex}:text:1",
            journey_id=self.journey_id,
            version=self.version,
            profile_id=f"{self.profile_id}-{person}",
            step_id="text",
            channel="sms",
            template="t",
            category="marketing",
            priority=50,
            at=AT,
            timezone="Asia/Shanghai",
        )

    async def touch_counted(self, item: SendInput) -> bool:
        """The send's touch still counts: another journey cannot have the day's one touch."""
        other = CapRequest(
            send_key=f"other-{item.send_key}",
            profile_id=item.profile_id,
            journey_id="another",
            channel=item.channel,
            priority=50,
            at=item.at,
            timezone=item.timezone,
        )
        return not (await self.caps.reserve(other)).allowed


@pytest.fixture
async def parts(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Parts]:
    client = aioredis.Redis.from_url(redis_server.url)
    store = await sqlite_store(tmp_path)
    (tmp_path / "templates").mkdir()
    YAML().dump({"text": "hi"}, tmp_path / "templates" / "t.yaml")
    journey = Journey.model_validate(
        {
            "id": f"j-{uuid.uuid4().hex[:6]}",
            "name": "n",
            "entry": {"api": True},
            "steps": [{"id": "text", "send": {"channel": "sms", "template": "t"}}],
        }
    )
    version, _ = await deploy_journey(store, journey, tmp_path / "templates", AT)
    profile_id = f"p-{uuid.uuid4().hex[:6]}"  # Redis outlives the test: a fresh person
    await store.upsert_profiles(
        [person(f"{profile_id}-{i}", phone="+86138000001") for i in range(3)]
    )
    async with httpx.AsyncClient() as http:
        caps = RedisCapService(client, ONE_A_DAY)
        yield Parts(store, caps, http, journey.id, version.version, profile_id)
    await store.aclose()
    await client.aclose()


async def test_an_at_most_once_send_is_on_record_before_the_provider_is_called(
    parts: Parts,
) -> None:
    probe = Probe(parts.store, "at_most_once")
    item = parts.send()

    result = await ActivityEnvironment().run(parts.activities(probe).send, item)

    assert result.status == "sent"
    assert probe.seen == ["attempting"]
    stored = await parts.store.get_delivery(item.send_key)
    assert stored is not None and (stored.status, stored.provider_message_id) == ("sent", "probe-1")


async def test_an_idempotent_send_writes_only_its_outcome(parts: Parts) -> None:
    probe = Probe(parts.store, "idempotent")

    result = await ActivityEnvironment().run(parts.activities(probe).send, parts.send())

    assert result.status == "sent"
    assert probe.seen == [None]


async def test_a_retry_finding_an_attempt_without_outcome_is_unknown_and_never_resent(
    parts: Parts,
) -> None:
    probe = Probe(parts.store, "at_most_once")
    item = parts.send()
    activities = parts.activities(probe)
    # The first attempt reserved the touch, claimed the send and called the provider; its
    # worker died before the outcome was written.
    await parts.caps.reserve(
        CapRequest(item.send_key, item.profile_id, item.journey_id, "sms", 50, AT, "Asia/Shanghai")
    )
    await parts.store.record_delivery(
        Delivery(
            item.send_key,
            item.journey_id,
            item.version,
            "p1",
            "text",
            "sms",
            "t",
            "marketing",
            "attempting",
            AT,
        )
    )

    result = await ActivityEnvironment().run(activities.send, item)
    again = await ActivityEnvironment().run(activities.send, item)

    assert (result.status, result.reason) == ("unknown", "interrupted")
    assert again.status == "unknown"
    assert probe.seen == []  # the provider was not called again
    stored = await parts.store.get_delivery(item.send_key)
    assert stored is not None and stored.status == "unknown"
    assert await parts.touch_counted(item)  # it may have reached the person


async def test_a_timeout_after_the_request_left_is_unknown_at_once(parts: Parts) -> None:
    lost = RetryableSendError("ReadTimeout", code="timeout", outcome_unknown=True)
    probe = Probe(parts.store, "at_most_once", errors=[lost])
    item = parts.send()

    result = await ActivityEnvironment().run(parts.activities(probe).send, item)

    assert (result.status, result.reason) == ("unknown", "no_answer:timeout")
    assert len(probe.seen) == 1
    assert await parts.touch_counted(item)


async def test_a_refusal_releases_the_claim_so_the_retry_sends(parts: Parts) -> None:
    busy = RetryableSendError("HTTP 503", code="http_503")
    probe = Probe(parts.store, "at_most_once", errors=[busy])
    item = parts.send()
    activities = parts.activities(probe)

    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(activities.send, item)
    assert await parts.store.get_delivery(item.send_key) is None
    result = await ActivityEnvironment().run(activities.send, item)

    assert result.status == "sent"
    assert probe.seen == ["attempting", "attempting"]


async def test_an_idempotent_send_is_retried_after_a_timeout(parts: Parts) -> None:
    lost = RetryableSendError("ReadTimeout", code="timeout", outcome_unknown=True)
    probe = Probe(parts.store, "idempotent", errors=[lost])
    item = parts.send()
    activities = parts.activities(probe)

    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(activities.send, item)
    result = await ActivityEnvironment().run(activities.send, item)

    assert result.status == "sent"
    assert probe.seen == [None, None]


async def test_a_send_waiting_for_the_rate_limit_is_not_yet_on_record(parts: Parts) -> None:
    # A worker dying while sends queue for the provider's limit must not leave them unknown.
    gate = asyncio.Event()
    probe = Probe(parts.store, "at_most_once", gate=gate)
    activities = parts.activities(probe, probe=LimitSettings(max_concurrency=1))
    items = [parts.send(person) for person in range(3)]
    running = [
        asyncio.create_task(ActivityEnvironment().run(activities.send, item)) for item in items
    ]
    for _ in range(100):  # until the first is at the provider
        if probe.seen:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # time for the others to reach the limit

    rows = [await parts.store.get_delivery(item.send_key) for item in items]
    assert sorted(row.status if row else "none" for row in rows) == ["attempting", "none", "none"]
    gate.set()
    assert [result.status for result in await asyncio.gather(*running)] == ["sent"] * 3
    assert probe.seen == ["attempting"] * 3
