"""POST /v1/identify: OneID through the API; events and enrollments follow the person."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from engine.api import create_app
from engine.identity import Identity
from tests.api.conftest import KEYS, Api, serving
from tests.harness import running_worker, sqlite_store

pytestmark = pytest.mark.timeout(60)

WELCOME = {
    "id": "welcome",
    "name": "welcome",
    "entry": {"api": True},
    "steps": [{"id": "pause", "wait": "30d"}],
}


async def identify(api: Api, **body: object) -> dict[str, object]:
    response = await api.client.post("/v1/identify", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_app_email_and_store_phone_become_one_profile_with_events_and_enrollments(
    api: Api,
) -> None:
    await api.harness.deploy(WELCOME, {}, datetime.now(UTC))
    app = await identify(
        api,
        identities=[{"type": "email", "value": " Mei.Han@Example.com"}],
        attributes={"first_name": "梅"},
    )
    shop = await identify(
        api,
        identities=[
            {"type": "phone", "value": "139-0013-9000"},
            {"type": "store_member_no", "value": "S-77"},
        ],
        attributes={"tier": "silver"},
    )
    assert app["created"] and shop["created"] and app["profile_id"] != shop["profile_id"]
    posted = await api.client.post(
        "/v1/events",
        json={
            "events": [
                {"event_id": "view", "profile_id": app["profile_id"], "name": "page_viewed"},
                {"event_id": "buy", "profile_id": shop["profile_id"], "name": "order_paid"},
            ]
        },
    )
    assert posted.status_code == 200
    triggered = await api.client.post(
        "/v1/journeys/welcome/trigger", json={"profile_ids": [shop["profile_id"]]}
    )
    assert triggered.json()["counts"] == {"started": 1}

    both = await identify(
        api,
        identities=[
            {"type": "email", "value": "mei.han@example.com"},
            {"type": "phone", "value": "+86 139 0013 9000"},
        ],
    )

    survivor = both["profile_id"]
    assert survivor == app["profile_id"]
    assert both == {"profile_id": survivor, "created": False, "merged": [shop["profile_id"]]}
    assert await api.store.count_profiles() == 1
    profile = await api.store.get_profile(str(survivor))
    assert profile is not None and profile.attributes == {"first_name": "梅", "tier": "silver"}
    assert {e.event_id for e in await api.store.events_for(str(survivor))} == {"view", "buy"}
    [enrollment] = await api.store.enrollments("welcome")
    assert enrollment.profile_id == survivor

    # Later events for the merged id land on the survivor.
    later = await api.client.post(
        "/v1/events",
        json={"events": [{"event_id": "late", "profile_id": shop["profile_id"], "name": "x"}]},
    )
    assert later.status_code == 200
    assert "late" in {e.event_id for e in await api.store.events_for(str(survivor))}
    # Triggering the merged id finds the survivor's run (started before the merge).
    again = await api.client.post(
        "/v1/journeys/welcome/trigger", json={"profile_ids": [shop["profile_id"]]}
    )
    assert again.json()["results"] == [{"profile_id": shop["profile_id"], "outcome": "live"}]


async def test_a_three_way_merge_through_the_api(api: Api) -> None:
    people = [
        await identify(api, identities=[{"type": "email", "value": "x@example.com"}]),
        await identify(api, identities=[{"type": "wecom_external_id", "value": "wmX"}]),
        await identify(api, identities=[{"type": "app_user_id", "value": "u-1"}]),
    ]
    merged = await identify(
        api,
        identities=[
            {"type": "app_user_id", "value": "u-1"},
            {"type": "wecom_external_id", "value": "wmX"},
            {"type": "email", "value": "X@EXAMPLE.COM"},
        ],
        tags=["vip"],
    )
    assert merged["profile_id"] == people[0]["profile_id"]
    assert sorted(merged["merged"]) == sorted(  # type: ignore[type-var]
        [people[1]["profile_id"], people[2]["profile_id"]]
    )
    assert await api.store.count_profiles() == 1
    assert len(await api.store.identities_of(str(merged["profile_id"]))) == 3


async def test_a_known_profile_id_is_created_with_the_given_id(api: Api) -> None:
    made = await identify(
        api,
        profile_id="crm-42",
        identities=[{"type": "phone", "value": "13800138000"}],
        timezone="Asia/Tokyo",
        locale="ja-JP",
    )
    assert made == {"profile_id": "crm-42", "created": True, "merged": []}
    profile = await api.store.get_profile("crm-42")
    assert profile is not None and (profile.timezone, profile.locale) == ("Asia/Tokyo", "ja-JP")


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({}, "give at least one identity or a profile_id"),
        ({"identities": []}, "give at least one identity or a profile_id"),
        ({"identities": [{"type": "fax", "value": "1"}]}, "Input should be 'email'"),
        ({"identities": [{"type": "email", "value": "nope"}]}, "not an email address"),
        ({"identities": [{"type": "phone", "value": "555-0100"}]}, "not a valid phone number"),
        ({"identities": [{"type": "phone"}]}, "Field required"),
        ({"identities": [{"type": "email", "value": 42}]}, "valid string"),
        ({"identities": [{"type": "app_user_id", "value": "x" * 10_000}]}, "at most 320"),
        ({"identities": [{"type": "app_user_id", "value": "a", "extra": 1}]}, "Extra inputs"),
        ({"identities": [{"type": "app_user_id", "value": "a"}] * 21}, "at most 20"),
        ({"profile_id": "p", "timezone": "Mars/Olympus"}, "unknown IANA timezone"),
        ({"profile_id": "p", "attributes": {"k": "\u0000"}}, "NUL"),
        ({"profile_id": "p", "tags": ["x" * 65]}, "at most 64"),
        ({"profile_id": "p" * 129}, "at most 128"),
        ({"identities": "email"}, "valid list"),
    ],
)
async def test_bad_identify_requests_are_422_with_a_precise_message(
    api: Api, body: dict[str, object], phrase: str
) -> None:
    response = await api.client.post("/v1/identify", json=body)
    assert response.status_code == 422, response.text
    assert phrase in response.text
    assert await api.store.count_profiles() == 0


async def test_an_invalid_phone_names_the_item_and_field(api: Api) -> None:
    response = await api.client.post(
        "/v1/identify",
        json={
            "identities": [
                {"type": "email", "value": "a@example.com"},
                {"type": "phone", "value": "12345"},
            ]
        },
    )
    assert response.status_code == 422, response.text
    [bad] = response.json()["invalid_items"]
    assert bad["index"] == 1 and bad["errors"][0]["field"] == "value"
    assert "not a valid phone number" in bad["errors"][0]["reason"]
    assert "12345" not in bad["errors"][0]["reason"]  # personal data is not echoed


async def test_national_numbers_are_read_in_the_api_s_default_region(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store = await sqlite_store(tmp_path)
    try:
        async with running_worker(time_skipping_env, store, tmp_path) as harness:
            app = create_app(store, harness.router, KEYS, default_region="US")
            async with (
                serving(app) as url,
                httpx.AsyncClient(
                    base_url=url, headers={"Authorization": f"Bearer {KEYS[0]}"}
                ) as client,
            ):
                own = await client.post(
                    "/v1/identify",
                    json={"identities": [{"type": "phone", "value": "(415) 555-0100"}]},
                )
                segment = await client.post(
                    "/v1/identify", json={"userId": "u-us", "traits": {"phone": "415.555.0101"}}
                )
        assert own.status_code == 200 and segment.status_code == 200, segment.text
        found = await store.find_profile_id(Identity("phone", "+14155550100"))
        assert found == own.json()["profile_id"]
        profile = await store.get_profile("u-us")
        assert profile is not None and profile.attributes == {"phone": "+14155550101"}
    finally:
        await store.aclose()
