"""Delivery is at least once: an event stored while Temporal could not be reached is delivered
when it is resent, or by the redelivery sweep."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client

from engine.domain import Event
from engine.servers import free_port
from engine.services.enroll import Enroller
from engine.services.events import DeliveryIncomplete, EventRouter
from engine.temporal import DATA_CONVERTER
from tests.api.conftest import Api
from tests.harness import Harness, person

pytestmark = pytest.mark.timeout(60)


async def waiting_run(h: Harness, profile_id: str) -> str:
    journey_id = f"redeliver-{uuid.uuid4().hex[:6]}"
    spec = {
        "id": journey_id,
        "name": "redelivery",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "7d"},
        "steps": [{"id": "pause", "wait": "30d"}],
    }
    now = datetime.now(UTC)
    version = await h.deploy(spec, {}, now)
    await h.store.upsert_profiles([person(profile_id)])
    assert (await h.enroller.enroll(version, [profile_id], now))["started"] == 1
    await h.until_step(journey_id, profile_id, "pause")
    return journey_id


async def unreachable_router(h: Harness) -> EventRouter:
    """A router whose Temporal address has nothing listening (an outage)."""
    dead = await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, data_converter=DATA_CONVERTER
    )
    return EventRouter(h.store, dead, Enroller(h.store, dead, h.task_queue))


async def test_an_event_whose_delivery_failed_is_delivered_when_resent(live_api: Api) -> None:
    h = live_api.harness
    journey_id = await waiting_run(h, "buyer")
    outage = await unreachable_router(h)
    pay = Event("pay-1", "buyer", "order_paid", datetime.now(UTC), {"amount": 99})

    with pytest.raises(DeliveryIncomplete) as failed:
        await outage.ingest_batch([pay], datetime.now(UTC))
    assert [r.fresh for r in failed.value.recorded] == [True]

    # The client resends through the API (Temporal is back): a duplicate, delivered now.
    response = await live_api.client.post(
        "/v1/events",
        json={"events": [{"event_id": "pay-1", "profile_id": "buyer", "name": "order_paid"}]},
    )
    assert response.json()["results"][0]["status"] == "duplicate"
    result = await asyncio.wait_for(h.result(journey_id, "buyer"), timeout=10)
    assert result.status == "converted"
    assert await h.store.undelivered_events(datetime.now(UTC) + timedelta(days=1)) == []
    assert len(await h.store.events_for("buyer")) == 1


async def test_the_sweep_delivers_what_nobody_resent(live_api: Api) -> None:
    h = live_api.harness
    journey_id = await waiting_run(h, "quiet")
    outage = await unreachable_router(h)
    with pytest.raises(RuntimeError):  # ingest re-raises delivery's own error
        await outage.ingest(
            Event("pay-2", "quiet", "order_paid", datetime.now(UTC)), datetime.now(UTC)
        )

    assert await h.router.redeliver(datetime.now(UTC), older_than=timedelta(minutes=1)) == 0
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert await h.router.redeliver(later, older_than=timedelta(minutes=1)) == 1

    result = await asyncio.wait_for(h.result(journey_id, "quiet"), timeout=10)
    assert result.status == "converted"
    assert await h.router.redeliver(later, older_than=timedelta(minutes=1)) == 0


async def test_the_api_says_503_when_events_are_stored_but_not_delivered(
    live_api: Api,
) -> None:
    h = live_api.harness
    await waiting_run(h, "p503")
    import httpx

    from engine.api import create_app
    from tests.api.conftest import KEYS, serving

    app = create_app(h.store, await unreachable_router(h), KEYS)
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEYS[0]}"}) as client,
    ):
        response = await client.post(
            "/v1/events",
            json={"events": [{"event_id": "pay-3", "profile_id": "p503", "name": "order_paid"}]},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "stored" in response.json()["detail"] and "Resend" in response.json()["detail"]
    assert response.json()["results"] == [{"index": 0, "event_id": "pay-3", "status": "accepted"}]
    assert [e.event_id for e in await h.store.events_for("p503")] == ["pay-3"]
