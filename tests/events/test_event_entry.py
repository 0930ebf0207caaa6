"""Event-triggered entry on the dev server: re-entry rules hold under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.harness import person

pytestmark = pytest.mark.timeout(90)


def signup_journey(journey_id: str, reentry: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": journey_id,
        "name": "welcome",
        "entry": {"event": "signed_up"},
        "reentry": reentry,
        "steps": [
            {"id": "hello", "send": {"channel": "sms", "template": "hello"}},
            {"id": "done", "exit": {}},
        ],
    }


async def post_signups(api: Api, profile_id: str, count: int) -> list[int]:
    """``count`` single-event requests at once, each with its own event id."""

    async def one() -> int:
        response = await api.client.post(
            "/v1/events",
            json={
                "events": [
                    {"event_id": uuid.uuid4().hex, "profile_id": profile_id, "name": "signed_up"}
                ]
            },
        )
        return response.status_code

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_ten_concurrent_entry_events_enter_a_once_journey_once(live_api: Api) -> None:
    h = live_api.harness
    journey_id = f"welcome-{uuid.uuid4().hex[:6]}"
    await h.deploy(
        signup_journey(journey_id, {"policy": "once"}), {"hello": {"text": "hi"}}, datetime.now(UTC)
    )
    await h.store.upsert_profiles([person("newbie", phone="+8613800000009")])

    assert await post_signups(live_api, "newbie", 10) == [200] * 10
    result = await asyncio.wait_for(h.result(journey_id, "newbie"), timeout=20)
    assert result.status == "completed"
    # After the run ended, ten more: "once" is for the person's lifetime.
    assert await post_signups(live_api, "newbie", 10) == [200] * 10

    enrollments = await h.store.enrollments(journey_id)
    assert len(enrollments) == 1
    assert enrollments[0].status == "completed"
    assert len(h.sent_lines()) == 1
    assert len(await h.store.events_for("newbie", "signed_up")) == 20


async def test_ten_concurrent_entry_events_start_one_live_run_under_always(
    live_api: Api,
) -> None:
    h = live_api.harness
    journey_id = f"welcome-always-{uuid.uuid4().hex[:6]}"
    spec = signup_journey(journey_id, {"policy": "always"})
    spec["steps"].insert(0, {"id": "pause", "wait": "1d"})
    await h.deploy(spec, {"hello": {"text": "hi"}}, datetime.now(UTC))
    await h.store.upsert_profiles([person("again")])

    assert await post_signups(live_api, "again", 10) == [200] * 10

    enrollments = await h.store.enrollments(journey_id)
    assert [e.status for e in enrollments] == ["active"]
    await h.until_step(journey_id, "again", "pause")
    await h.handle(journey_id, "again").terminate("test over")
