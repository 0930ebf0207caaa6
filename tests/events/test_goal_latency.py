"""An event sent through the API ends a waiting run's goal within one second on the embedded
stack (the Temporal dev server, SQLite, a worker, uvicorn)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.api.conftest import Api
from tests.harness import person

pytestmark = pytest.mark.timeout(60)


async def test_a_goal_event_through_the_api_converts_a_waiting_run_within_a_second(
    live_api: Api,
) -> None:
    h = live_api.harness
    journey_id = f"goal-latency-{uuid.uuid4().hex[:6]}"
    spec = {
        "id": journey_id,
        "name": "goal latency",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "7d"},
        "steps": [
            {"id": "wait_pay", "wait_for": {"event": "never_sent", "timeout": "3d"}},
            {"id": "nudge", "send": {"channel": "sms", "template": "nudge"}},
        ],
    }
    await h.deploy(spec, {"nudge": {"text": "still there?"}}, datetime.now(UTC))
    await h.store.upsert_profiles([person("buyer")])
    triggered = await live_api.client.post(
        f"/v1/journeys/{journey_id}/trigger", json={"profile_ids": ["buyer"]}
    )
    assert triggered.json()["counts"] == {"started": 1}
    await h.until_step(journey_id, "buyer", "wait_pay")

    sent_at = time.monotonic()
    response = await live_api.client.post(
        "/v1/events",
        json={"events": [{"event_id": "pay-1", "profile_id": "buyer", "name": "order_paid"}]},
    )
    result = await asyncio.wait_for(h.result(journey_id, "buyer"), timeout=5)
    elapsed = time.monotonic() - sent_at

    assert response.status_code == 200, response.text
    assert result.status == "converted"
    assert elapsed < 1.0, f"the goal took {elapsed:.3f}s to end the run"
    enrollment = await h.store.last_enrollment(journey_id, "buyer")
    assert enrollment is not None and enrollment.status == "converted"
    assert h.sent_lines() == []
