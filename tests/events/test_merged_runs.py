"""A run started for a profile that is later merged into another still gets the person's events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from engine.identity import identity
from tests.api.conftest import Api

pytestmark = pytest.mark.timeout(60)


async def test_a_goal_event_for_the_survivor_converts_the_merged_profiles_run(
    live_api: Api,
) -> None:
    h = live_api.harness
    journey_id = f"merged-{uuid.uuid4().hex[:6]}"
    spec = {
        "id": journey_id,
        "name": "merged runs",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "7d"},
        "steps": [{"id": "pause", "wait": "30d"}],
    }
    now = datetime.now(UTC)
    version = await h.deploy(spec, {}, now)
    app = await h.store.identify([identity("email", "a@example.com")], at=now - timedelta(days=9))
    shop = await h.store.identify([identity("phone", "13800138000")], at=now)
    assert (await h.enroller.enroll(version, [shop.profile_id], now))["started"] == 1
    await h.until_step(journey_id, shop.profile_id, "pause")

    merged = await h.store.identify(
        [identity("email", "a@example.com"), identity("phone", "13800138000")]
    )
    assert (merged.profile_id, merged.merged) == (app.profile_id, (shop.profile_id,))

    response = await live_api.client.post(
        "/v1/events",
        json={"events": [{"event_id": "pay", "profile_id": app.profile_id, "name": "order_paid"}]},
    )
    assert response.status_code == 200
    result = await asyncio.wait_for(h.result(journey_id, shop.profile_id), timeout=10)
    assert result.status == "converted"
    [enrollment] = await h.store.enrollments(journey_id)
    assert (enrollment.profile_id, enrollment.status) == (app.profile_id, "converted")
