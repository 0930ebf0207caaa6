"""End to end on the Temporal dev server: a goal event sent through the API converts a run that
is in the middle of a long wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import Api, api_over
from tests.harness import person

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def live_api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_over(dev_env, tmp_path) as running:
        yield running


async def test_an_order_paid_event_posted_to_the_api_converts_the_run_within_seconds(
    live_api: Api,
) -> None:
    h = live_api.harness
    journey_id = f"api-goal-{uuid.uuid4().hex[:8]}"
    spec = {
        "id": journey_id,
        "name": "goal through the API",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "7d"},
        "steps": [
            {"id": "pause", "wait": "30d"},
            {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
        ],
    }
    now = datetime.now(UTC)
    version = await h.deploy(spec, {"hello": {"text": "hi"}}, now)
    await h.store.upsert_profiles([person("buyer", phone="+8613800000001")])
    assert (await h.enroller.enroll(version, ["buyer"], now))["started"] == 1
    await h.until_step(journey_id, "buyer", "pause")

    response = await live_api.client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "event_id": "pay-1",
                    "profile_id": "buyer",
                    "name": "order_paid",
                    "properties": {"amount": 199},
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "accepted"

    result = await asyncio.wait_for(h.result(journey_id, "buyer"), timeout=10)

    assert result.status == "converted"
    assert result.exit_step == "pause"
    assert h.sent_lines() == []
    enrollment = await h.store.last_enrollment(journey_id, "buyer")
    assert enrollment is not None and enrollment.status == "converted"
