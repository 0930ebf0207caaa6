"""POST /v1/journeys/{id}/trigger: API entry with re-entry rules and precise refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.api.conftest import Api
from tests.harness import person

pytestmark = pytest.mark.timeout(60)

API_JOURNEY = {
    "id": "vip-call",
    "name": "VIP call",
    "entry": {"api": True},
    "reentry": {"policy": "once"},
    "steps": [{"id": "pause", "wait": "30d"}],
}


async def test_trigger_starts_runs_and_reports_each_person(api: Api) -> None:
    await api.harness.deploy(API_JOURNEY, {}, datetime.now(UTC))
    await api.store.upsert_profiles([person("p1"), person("p2")])

    first = await api.client.post(
        "/v1/journeys/vip-call/trigger", json={"profile_ids": ["p1", "p2", "ghost", "p1"]}
    )
    again = await api.client.post("/v1/journeys/vip-call/trigger", json={"profile_ids": ["p1"]})

    assert first.status_code == 200, first.text
    assert first.json() == {
        "journey_id": "vip-call",
        "version": 1,
        "counts": {"started": 2, "missing": 1},
        "results": [
            {"profile_id": "p1", "outcome": "started"},
            {"profile_id": "p2", "outcome": "started"},
            {"profile_id": "ghost", "outcome": "missing"},
        ],
    }
    assert again.json()["results"] == [{"profile_id": "p1", "outcome": "live"}]
    assert {e.profile_id for e in await api.store.enrollments("vip-call")} == {"p1", "p2"}


async def test_unknown_and_non_api_journeys_are_refused_precisely(api: Api) -> None:
    await api.harness.deploy(
        {**API_JOURNEY, "id": "on-signup", "entry": {"event": "signed_up"}}, {}, datetime.now(UTC)
    )
    await api.store.upsert_profiles([person("p1")])

    unknown = await api.client.post("/v1/journeys/nope/trigger", json={"profile_ids": ["p1"]})
    by_event = await api.client.post("/v1/journeys/on-signup/trigger", json={"profile_ids": ["p1"]})
    empty = await api.client.post("/v1/journeys/on-signup/trigger", json={"profile_ids": []})
    too_many = await api.client.post(
        "/v1/journeys/on-signup/trigger", json={"profile_ids": [f"p{i}" for i in range(1001)]}
    )
    wrong_type = await api.client.post("/v1/journeys/on-signup/trigger", json={"profile_ids": "p1"})

    assert unknown.status_code == 404 and "no journey with this id" in unknown.text
    assert by_event.status_code == 409
    assert "enters people by event" in by_event.json()["detail"]
    assert empty.status_code == 422 and "at least 1 item" in empty.text
    assert too_many.status_code == 422 and "at most 1000" in too_many.text
    assert wrong_type.status_code == 422 and "valid list" in wrong_type.text
    assert await api.store.enrollments("on-signup") == []
