"""POST /v1/profiles: upserts, validated all-or-nothing."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.test_events import HOSTILE

pytestmark = pytest.mark.timeout(60)


async def test_profiles_are_upserted_and_round_trip(api: Api) -> None:
    attributes = {"first_name": HOSTILE[2], "note": HOSTILE[0], "cart_value": 250.5}
    batch = {
        "profiles": [
            {
                "id": "p1",
                "attributes": attributes,
                "tags": ["vip", "fruit_lover"],
                "timezone": "Europe/Berlin",
                "locale": "de-DE",
            },
            {"id": "p2"},
            {"id": "p2", "attributes": {"last": True}},
        ]
    }

    response = await api.client.post("/v1/profiles", json=batch)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 3, "upserted": 2}
    p1 = await api.store.get_profile("p1")
    assert p1 is not None
    assert (p1.attributes, p1.tags, p1.timezone, p1.locale) == (
        attributes,
        frozenset({"vip", "fruit_lover"}),
        "Europe/Berlin",
        "de-DE",
    )
    p2 = await api.store.get_profile("p2")
    assert p2 is not None and p2.attributes == {"last": True}
    assert (p2.timezone, p2.locale) == ("Asia/Shanghai", "zh-CN")


async def test_an_invalid_profile_rejects_the_batch_and_names_each_bad_item(api: Api) -> None:
    batch = {
        "profiles": [
            {"id": "ok"},
            {"id": "p1", "timezone": "Mars/Olympus_Mons"},
            {"id": "p2", "timezone": "../../etc/passwd"},
            {"id": "p3", "tags": ["fine", ""]},
            {"id": "p4", "locale": "not a locale"},
        ]
    }

    response = await api.client.post("/v1/profiles", json=batch)

    assert response.status_code == 422
    items = {i["index"]: i["errors"] for i in response.json()["invalid_items"]}
    assert set(items) == {1, 2, 3, 4}
    assert "unknown IANA timezone 'Mars/Olympus_Mons'" in items[1][0]["reason"]
    assert items[3][0]["field"] == "tags.1"
    assert items[4][0]["field"] == "locale"
    assert await api.store.count_profiles() == 0


async def test_more_than_1000_profiles_are_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/profiles", json={"profiles": [{"id": f"p{i}"} for i in range(1001)]}
    )
    assert response.status_code == 422
    assert "at most 1000 items" in response.text
    assert await api.store.count_profiles() == 0
