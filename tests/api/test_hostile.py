"""Hostile input on every write route: a precise 4xx, and the database exactly as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from engine.store import Store
from engine.store.tables import metadata
from tests.api.conftest import Api
from tests.api.test_events import HOSTILE
from tests.harness import person

pytestmark = pytest.mark.timeout(90)

BIG = "数" * 3400  # 10,200 bytes of UTF-8
SQL = "x'); DELETE FROM profiles; --"


async def snapshot(store: Store) -> dict[str, list[str]]:
    async with store.engine.connect() as conn:
        return {
            t.name: sorted(repr(tuple(row)) for row in await conn.execute(select(t)))
            for t in metadata.sorted_tables
        }


def ok_event(n: int) -> dict[str, Any]:
    return {"event_id": f"ok-{n}", "profile_id": "p1", "name": "page_viewed"}


CASES: list[tuple[str, str, Any, int, str]] = [
    # events: one bad item among good ones rejects the batch
    (
        "POST",
        "/v1/events",
        {"events": [ok_event(1), {"profile_id": SQL, "name": SQL}]},
        422,
        "pattern",
    ),
    ("POST", "/v1/events", {"events": [ok_event(1), {"profile_id": BIG, "name": "x"}]}, 422, "128"),
    (
        "POST",
        "/v1/events",
        {"events": [ok_event(1), {"profile_id": "p", "name": BIG}]},
        422,
        "pattern",
    ),
    (
        "POST",
        "/v1/events",
        {"events": [ok_event(1), {"event_id": "e\"'" + BIG, "profile_id": "p", "name": "x"}]},
        422,
        "128",
    ),
    ("POST", "/v1/events", {"events": [ok_event(n) for n in range(1001)]}, 422, "at most 1000"),
    ("POST", "/v1/events", {"events": [{"profile_id": ["p"], "name": "x"}]}, 422, "valid string"),
    (
        "POST",
        "/v1/events",
        {"events": [{"profile_id": "p", "name": "x", "properties": {"a": BIG * 4}}]},
        422,
        "the limit is",
    ),
    ("POST", "/v1/events", {"events": [ok_event(1)], "drop": SQL}, 422, "Extra inputs"),
    # profiles
    ("POST", "/v1/profiles", {"profiles": [{"id": "p2"}, {"id": SQL + "\x00"}]}, 422, "control"),
    ("POST", "/v1/profiles", {"profiles": [{"id": "p2", "tags": [BIG]}]}, 422, "at most 64"),
    ("POST", "/v1/profiles", {"profiles": [{"id": "p2", "timezone": SQL}]}, 422, "timezone"),
    ("POST", "/v1/profiles", {"profiles": [{"id": "p2", "locale": SQL}]}, 422, "pattern"),
    ("POST", "/v1/profiles", {"profiles": [{"id": f"q{n}"} for n in range(1001)]}, 422, "1000"),
    ("POST", "/v1/profiles", {"profiles": [{"id": 7}]}, 422, "valid string"),
    # identify
    ("POST", "/v1/identify", {"identities": [{"type": SQL, "value": "v"}]}, 422, "'email'"),
    ("POST", "/v1/identify", {"identities": [{"type": "email", "value": SQL}]}, 422, "email"),
    ("POST", "/v1/identify", {"identities": [{"type": "phone", "value": BIG}]}, 422, "at most"),
    (
        "POST",
        "/v1/identify",
        b'{"identities": [{"type": "app_user_id", "value": "ok"}], "attributes": {"k": "\\ud800"}}',
        422,
        "surrogate",
    ),
    (
        "POST",
        "/v1/identify",
        {"identities": [{"type": "app_user_id", "value": f"u{n}"} for n in range(21)]},
        422,
        "at most 20",
    ),
    ("POST", "/v1/identify", {"profile_id": SQL, "locale": 5}, 422, "valid string"),
    ("POST", "/v1/identify", [SQL], 422, "valid dictionary"),
    # subscriptions
    (
        "PUT",
        "/v1/profiles/p1/subscriptions/" + BIG[:100],
        {"status": "unsubscribed"},
        422,
        "pattern",
    ),
    ("PUT", "/v1/profiles/p1/subscriptions/sms", {"status": SQL}, 422, "'subscribed'"),
    ("PUT", f"/v1/profiles/{SQL}/subscriptions/sms", {"status": "unsubscribed"}, 404, "no profile"),
    # trigger
    ("POST", "/v1/journeys/api-one/trigger", {"profile_ids": [SQL + "\n"]}, 422, "control"),
    ("POST", "/v1/journeys/api-one/trigger", {"profile_ids": ["p1"] * 1001}, 422, "1000"),
    ("POST", "/v1/journeys/api-one/trigger", {"profile_ids": [{"id": "p1"}]}, 422, "string"),
    ("POST", f"/v1/journeys/{SQL}/trigger", {"profile_ids": ["p1"]}, 404, "no journey"),
    ("POST", "/v1/journeys/" + "j" * 129 + "/trigger", {"profile_ids": ["p1"]}, 422, "128"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "phrase"), CASES)
async def test_hostile_requests_get_a_precise_4xx_and_change_nothing(
    api: Api, method: str, path: str, body: Any, status: int, phrase: str
) -> None:
    await api.harness.deploy(
        {
            "id": "api-one",
            "name": "api",
            "entry": {"api": True},
            "steps": [{"id": "pause", "wait": "30d"}],
        },
        {},
        datetime.now(UTC),
    )
    await api.store.upsert_profiles([person("p1")])
    await api.client.post("/v1/events", json={"events": [ok_event(0)]})
    before = await snapshot(api.store)

    if isinstance(body, bytes):  # JSON that Python cannot encode (lone surrogates)
        response = await api.client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = await api.client.request(method, path, json=body)

    assert response.status_code == status, response.text
    assert phrase in response.text
    assert "Traceback" not in response.text
    assert await snapshot(api.store) == before


async def test_hostile_but_valid_values_are_stored_exactly(api: Api) -> None:
    attributes = {**{f"k{i}": v for i, v in enumerate(HOSTILE)}, SQL: BIG, HOSTILE[1]: None}
    response = await api.client.post(
        "/v1/identify",
        json={
            "profile_id": HOSTILE[0],
            "identities": [
                {"type": "app_user_id", "value": HOSTILE[2].strip()},
                {"type": "store_member_no", "value": SQL},
            ],
            "attributes": attributes,
            "tags": ["🎉", "'"],
        },
    )
    assert response.status_code == 200, response.text
    profile = await api.store.get_profile(HOSTILE[0])
    assert profile is not None
    assert profile.attributes == {k: v for k, v in attributes.items() if v is not None}
    assert profile.tags == {"🎉", "'"}
    assert {i.value for i in await api.store.identities_of(HOSTILE[0])} == {
        HOSTILE[2].strip(),
        SQL,
    }
