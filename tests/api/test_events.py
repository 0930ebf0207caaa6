"""POST /v1/events: batches stored once each, all-or-nothing validation, hostile input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.api.models import MAX_JSON_BYTES
from tests.api.conftest import Api

pytestmark = pytest.mark.timeout(90)


def events(count: int, people: int = 5, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"evt-{i:04d}",
            "profile_id": f"p{i % people}",
            "name": "page_viewed",
            "occurred_at": f"2026-11-18T10:{i // 60 % 60:02d}:{i % 60:02d}+08:00",
            "properties": {"i": i},
            **extra,
        }
        for i in range(count)
    ]


async def stored_ids(api: Api, people: int = 5) -> list[str]:
    ids: list[str] = []
    for n in range(people):
        ids += [e.event_id for e in await api.store.events_for(f"p{n}")]
    return ids


async def test_a_batch_of_500_is_accepted_and_resending_it_stores_nothing_twice(api: Api) -> None:
    batch = {"events": events(500)}

    first = await api.client.post("/v1/events", json=batch)
    again = await api.client.post("/v1/events", json=batch)

    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == ["accepted"] * 500
    assert [(r["index"], r["event_id"]) for r in first.json()["results"]] == [
        (i, f"evt-{i:04d}") for i in range(500)
    ]
    assert again.status_code == 200
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 500
    ids = await stored_ids(api)
    assert sorted(ids) == [f"evt-{i:04d}" for i in range(500)]
    [first_event] = [e for e in await api.store.events_for("p0") if e.event_id == "evt-0000"]
    assert first_event.occurred_at == datetime(2026, 11, 18, 2, 0, tzinfo=UTC)
    assert first_event.properties == {"i": 0}


async def test_a_repeated_id_within_one_batch_is_a_duplicate(api: Api) -> None:
    item = {"event_id": "same", "profile_id": "p1", "name": "clicked"}
    response = await api.client.post("/v1/events", json={"events": [item, item]})
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "duplicate"]
    assert len(await api.store.events_for("p1")) == 1


async def test_defaults_a_uuid_and_the_receive_time_and_accepts_unknown_profiles(
    api: Api,
) -> None:
    before = datetime.now(UTC)
    response = await api.client.post(
        "/v1/events", json={"events": [{"profile_id": "nobody-yet", "name": "app_opened"}]}
    )
    [result] = response.json()["results"]
    assert result["status"] == "accepted"
    assert await api.store.get_profile("nobody-yet") is None
    [stored] = await api.store.events_for("nobody-yet")
    assert stored.event_id == result["event_id"] and len(stored.event_id) == 36
    assert before <= stored.occurred_at <= datetime.now(UTC)
    assert stored.properties == {}


async def test_one_invalid_item_rejects_the_whole_batch_naming_its_index(api: Api) -> None:
    batch = events(10)
    batch[7]["name"] = "order paid!"

    response = await api.client.post("/v1/events", json={"events": batch})

    assert response.status_code == 422
    body = response.json()
    assert body["invalid_items"] == [
        {
            "index": 7,
            "errors": [
                {"field": "name", "reason": body["invalid_items"][0]["errors"][0]["reason"]}
            ],
        }
    ]
    assert "should match pattern" in body["invalid_items"][0]["errors"][0]["reason"]
    assert "nothing was written" in body["message"]
    assert await stored_ids(api) == []


async def test_every_invalid_item_is_listed(api: Api) -> None:
    batch = events(6)
    batch[1]["profile_id"] = ""
    batch[3]["occurred_at"] = "2026-11-18T10:00:00"  # no timezone
    batch[3]["colour"] = "red"  # unknown field
    batch[5]["properties"] = {"blob": "x" * MAX_JSON_BYTES}

    response = await api.client.post("/v1/events", json={"events": batch})

    assert response.status_code == 422
    items = {item["index"]: item["errors"] for item in response.json()["invalid_items"]}
    assert set(items) == {1, 3, 5}
    assert [e["field"] for e in items[1]] == ["profile_id"]
    assert sorted(e["field"] for e in items[3]) == ["colour", "occurred_at"]
    assert "timezone" in next(e["reason"] for e in items[3] if e["field"] == "occurred_at")
    assert f"the limit is {MAX_JSON_BYTES}" in items[5][0]["reason"]
    assert await stored_ids(api) == []


async def test_1001_items_are_refused_with_the_limit_in_the_message(api: Api) -> None:
    response = await api.client.post("/v1/events", json={"events": events(1001)})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "events"]
    assert "at most 1000 items" in error["msg"]
    assert "input" not in error  # the refused batch is not echoed back
    assert await stored_ids(api) == []


async def test_an_empty_batch_is_refused(api: Api) -> None:
    response = await api.client.post("/v1/events", json={"events": []})
    assert response.status_code == 422
    assert "at least 1 item" in response.json()["detail"][0]["msg"]


LATE = b"9999-12-31T23:00:00-14:00"  # a valid ISO string, past datetime.max in UTC


@pytest.mark.parametrize(
    ("content", "status", "phrase"),
    [
        (b'{"events": [', 400, "malformed JSON at line 1, column 13"),
        (b"", 422, "Field required"),
        (b"[]", 422, "valid dictionary"),
        (b'"events"', 422, "valid dictionary"),
        (b"null", 422, "valid dictionary"),
        (b'{"events": "p1"}', 422, "valid list"),
        (b'{"events": [{"profile_id": 7, "name": "x"}]}', 422, "valid string"),
        (b'{"events": [{"profile_id": "p", "name": "x", "properties": []}]}', 422, "dictionary"),
        (b'{"events": [{"profile_id": "p", "name": "x", "occurred_at": 1700000000}]}', 422, "ISO"),
        (b'{"events": [{"profile_id": "p", "name": "x", "properties": {"n": NaN}}]}', 422, "JSON"),
        (
            b'{"events": [{"profile_id": "p", "name": "x", "properties": {"n": 1e999}}]}',
            422,
            "JSON",
        ),
        (b'{"events": [{"profile_id": "p\\u0000", "name": "x"}]}', 422, "control"),
        (b'{"events": [{"profile_id": "\\ud800", "name": "x"}]}', 422, "unicode"),
        (
            b'{"events": [{"profile_id": "p", "name": "x", "properties": {"k": "\\udc00"}}]}',
            422,
            "surrogate",
        ),
        (
            b'{"events": [{"profile_id": "p", "name": "x", "properties": {"k": "\\u0000"}}]}',
            422,
            "NUL",
        ),
        (b'{"events": [{"profile_id": "p", "name": "order_paid\\n"}]}', 422, "pattern"),
        (
            b'{"events": [{"profile_id": "p", "name": "x", "occurred_at": "' + LATE + b'"}]}',
            422,
            "range",
        ),
        (
            b'{"events": [{"profile_id": "p", "name": "x", "occurred_at": "yesterday"}]}',
            422,
            "datetime",
        ),
        (b'{"events": [{"profile_id": "' + b"p" * 129 + b'", "name": "x"}]}', 422, "at most 128"),
        (b'{"events": [{"profile_id": "p", "name": "' + b"a" * 65 + b'"}]}', 422, "pattern"),
        (b'{"events": [{"profile_id": "\xff\xfe", "name": "x"}]}', 400, "byte 28 (0xff)"),
        (
            b'{"events": [{"profile_id": "p", "name": "x", "properties": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}]}",
            400,
            "nested too deeply",
        ),
    ],
)
async def test_bad_input_is_a_4xx_with_a_precise_message(
    api: Api, content: bytes, status: int, phrase: str
) -> None:
    response = await api.client.post(
        "/v1/events", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert phrase in response.text
    assert await api.store.events_for("p") == []


async def test_deep_nesting_within_the_parser_limit_is_refused_by_depth(api: Api) -> None:
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"d": deep}
    response = await api.client.post(
        "/v1/events", json={"events": [{"profile_id": "p", "name": "x", "properties": deep}]}
    )
    assert response.status_code == 422
    assert "nested deeper than 32" in response.text


async def test_a_body_without_json_content_type_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/events",
        content=json.dumps({"events": events(1)}),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 422
    assert await stored_ids(api) == []


async def test_an_oversized_body_is_413(api: Api) -> None:
    response = await api.client.post(
        "/v1/events",
        content=b'{"events": ["' + b"x" * (40 * 1024 * 1024) + b'"]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


HOSTILE = [
    "Robert'); DROP TABLE events;--",
    "\"quoted\" 'single' `back` \\back\\slash",
    "小明 🎉 مرحبا עברית \u200b\u202e zero-width and RTL",
    "line\nbreak\ttab\r\n",
    "%s %(x)s {0} {{ jinja }} $1 ${x}",
    "<script>alert(1)</script>",
]


async def test_hostile_strings_round_trip_unchanged(api: Api) -> None:
    big = ("数据" * 1700)[:3400]  # 10,200 bytes of UTF-8
    properties = {
        **{f"k{i}": value for i, value in enumerate(HOSTILE)},
        "big": big,
        "nested": {"list": [*HOSTILE, 1, 2.5, True, None, -(2**63), 2**64]},
        HOSTILE[0]: HOSTILE[2],
    }
    assert 10_000 < len(json.dumps(properties, ensure_ascii=False).encode()) < MAX_JSON_BYTES
    profile_id = "Robert'); DROP TABLE profiles;-- 小明 🎉"
    event_id = "evt \"'; SELECT 1; -- ✓"

    response = await api.client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "event_id": event_id,
                    "profile_id": profile_id,
                    "name": "hostile.event_1",
                    "properties": properties,
                }
            ]
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["event_id"] == event_id
    [stored] = await api.store.events_for(profile_id)
    assert (stored.event_id, stored.profile_id, stored.name) == (
        event_id,
        profile_id,
        "hostile.event_1",
    )
    assert stored.properties == properties


async def test_the_log_has_counts_and_no_personal_data(api: Api) -> None:
    from structlog.testing import capture_logs

    batch = events(3)
    batch[0]["properties"] = {"phone": "+8613800000001"}
    with capture_logs() as logs:
        await api.client.post("/v1/events", json={"events": batch})
        await api.client.post("/v1/events", json={"events": batch})
    ingested = [entry for entry in logs if entry["event"] == "events_ingested"]
    assert [(e["received"], e["accepted"], e["duplicate"]) for e in ingested] == [
        (3, 3, 0),
        (3, 0, 3),
    ]
    assert "+8613800000001" not in repr(logs)
    assert "p0" not in repr(logs)
