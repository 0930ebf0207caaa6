"""Bad input to the Segment routes: a precise 4xx with Segment's ``code`` and ``message``,
nothing stored, and the server still answers."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import KEYS, Api
from tests.api.test_hostile import snapshot

pytestmark = pytest.mark.timeout(60)

BASIC = "Basic " + base64.b64encode(f"{KEYS[0]}:".encode()).decode()


def track(n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "clicked", "messageId": f"m{n}", **fields}


BIG = "x" * (33 * 1024)

CASES: list[tuple[str, Any, str, int | None]] = [
    # (path, body, phrase, index of the bad message)
    ("/v1/batch", {"batch": [track(1), {**track(2), "type": "purchase"}]}, "'track'", 1),
    ("/v1/batch", {"batch": [track(1), {"type": "track", "event": "x"}]}, "userId or anon", 1),
    ("/v1/batch", {"batch": [track(1), track(2, userId=42)]}, "valid string", 1),
    ("/v1/batch", {"batch": [track(1), track(2, properties=[1])]}, "valid dictionary", 1),
    ("/v1/batch", {"batch": [track(1), track(2, userId="a\x00b")]}, "control", 1),
    ("/v1/batch", {"batch": [track(1), track(2, anonymousId="\x00")]}, "control", 1),
    ("/v1/batch", {"batch": [track(1), track(2, event="支付")]}, "ASCII letters", 1),
    ("/v1/batch", {"batch": [track(1), track(2, timestamp="yesterday")]}, "datetime", 1),
    ("/v1/batch", {"batch": [track(1), track(2, properties={"a": BIG})]}, "limit", 1),
    ("/v1/batch", {"batch": [track(1), {**track(2), "event": None}]}, "needs event", 1),
    (
        "/v1/batch",
        {"batch": [track(1), {"type": "identify", "userId": "u", "traits": {"email": "no"}}]},
        "traits.email",
        1,
    ),
    (
        "/v1/batch",
        {"batch": [track(1), {"type": "identify", "userId": "u", "traits": {"phone": "12"}}]},
        "traits.phone",
        1,
    ),
    ("/v1/batch", {"batch": [track(1), {"type": "alias", "userId": "u"}]}, "previousId", 1),
    ("/v1/batch", {"batch": [track(1), {"type": "group", "userId": "u"}]}, "groupId", 1),
    ("/v1/batch", {"batch": []}, "at least 1", None),
    ("/v1/batch", {"batch": "all"}, "valid list", None),
    ("/v1/batch", [track(1)], "JSON object", None),
    ("/v1/track", {"userId": "u1"}, "needs event", None),
    ("/v1/track", {"userId": "u1", "event": "x", "type": "page"}, "'page' on the /v1/track", None),
    ("/v1/page", {"name": "Home"}, "userId or anonymousId", None),
    ("/v1/alias", {"previousId": "a"}, "userId and previousId", None),
    ("/v1/group", {"userId": "u"}, "groupId", None),
    ("/v1/identify", {"userId": "u", "traits": {"email": ["x"]}}, "traits.email", None),
    ("/v1/identify", {"userId": "u", "context": {"traits": 5}}, "context.traits", None),
    ("/v1/screen", {"anonymousId": 5}, "valid string", None),
    ("/v1/page", {"anonymousId": "a", "name": "Home\u0000"}, "control", None),
]


@pytest.mark.parametrize(("path", "body", "phrase", "index"), CASES)
async def test_invalid_messages_are_400_naming_the_message_and_store_nothing(
    api: Api, path: str, body: Any, phrase: str, index: int | None
) -> None:
    before = await snapshot(api.store)
    response = await api.client.post(path, json=body, headers={"Authorization": BASIC})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["code"] in ("invalid_request",)
    assert phrase in answer["message"] or phrase in json.dumps(answer, ensure_ascii=False)
    assert "nothing was stored" in answer["message"]
    if index is not None:
        assert {e["index"] for e in answer["errors"]} == {index}
        assert answer["message"].startswith(f"message {index}: ")
    assert await snapshot(api.store) == before
    assert (await api.client.get("/healthz")).status_code == 200


RAW: list[tuple[str, bytes, dict[str, str], str]] = [
    ("/v1/batch", b'{"batch": [', {}, "malformed JSON at line 1, column 12"),
    ("/v1/track", b'{"userId": "\xff\xfe", "event": "x"}', {}, "not UTF-8"),
    ("/v1/identify", b"{not json", {}, "malformed JSON at line 1, column 2"),
    ("/v1/screen", b'{"anonymousId": "a", "category": "\\ud800"}', {}, "unicode string"),
    ("/v1/batch", b'{"batch": ' + b"[" * 200_000, {}, "nested too deeply"),
    ("/v1/batch", b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}, "gzip body is corrupt"),
    ("/v1/batch", b"{}", {"Content-Encoding": "br"}, "Content-Encoding"),
    ("/v1/track", json.dumps(track(1, properties={"a": "y" * 30_000, "b": "z" * 3_000})).encode(),
     {}, "larger than 32 KB"),
    ("/v1/batch", json.dumps({"batch": [track(n) for n in range(8000)]}).encode(), {},
     "larger than 500 KB"),
    # A gzip bomb: small on the wire, over the limit once inflated.
    ("/v1/batch", gzip.compress(b'{"batch": [' + b" " * 600_000 + b"]}"),
     {"Content-Encoding": "gzip"}, "larger than 500 KB"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "content", "headers", "phrase"), RAW)
async def test_bodies_that_are_not_json_or_too_large_are_400(
    api: Api, path: str, content: bytes, headers: dict[str, str], phrase: str
) -> None:
    before = await snapshot(api.store)
    response = await api.client.post(
        path,
        content=content,
        headers={"Authorization": BASIC, "Content-Type": "application/json", **headers},
    )
    assert response.status_code == 400, response.text
    assert phrase in response.json()["message"]
    assert await snapshot(api.store) == before


def test_one_message_over_32_kb_in_a_batch_is_named() -> None:
    """(Checked without a server: the size check needs no store.)"""
    from engine.api.segment import SegmentRequestError, _validate_batch

    body = {"batch": [track(1), track(2, context={"blob": "q" * 33_000})]}
    with pytest.raises(SegmentRequestError) as refused:
        _validate_batch(body)
    assert refused.value.status == 400
    assert refused.value.errors is not None
    assert refused.value.errors[0]["index"] == 1
    assert "the limit is 32768" in refused.value.errors[0]["reason"]


AUTH: list[tuple[dict[str, str], dict[str, Any], str]] = [
    ({}, {"batch": [track(1)]}, "missing write key"),
    ({}, {"batch": [track(1)], "writeKey": "nope"}, "invalid write key"),
    ({}, {"batch": [track(1)], "writeKey": 7}, "missing write key"),
    (
        {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()},
        {"batch": [track(1)]},
        "invalid API key",
    ),
    ({"Authorization": "Basic !!!"}, {"batch": [track(1)]}, "missing API key"),
    ({"Authorization": f"Bearer {KEYS[0]}x"}, {"batch": [track(1)]}, "invalid API key"),
]


@pytest.mark.parametrize(("headers", "body", "phrase"), AUTH)
async def test_a_wrong_write_key_is_401_and_stores_nothing(
    api: Api, headers: dict[str, str], body: dict[str, Any], phrase: str
) -> None:
    before = await snapshot(api.store)
    async with httpx.AsyncClient(base_url=api.url, headers=headers) as anonymous:
        for path, payload in (("/v1/batch", body), ("/v1/track", {**track(1), **body})):
            response = await anonymous.post(path, json=payload)
            assert response.status_code == 401, response.text
            assert phrase in response.json()["message"]
        # Malformed JSON without a key says 401, not what is wrong with the body.
        garbage = await anonymous.post("/v1/batch", content=b"{oops")
        assert garbage.status_code == 401
    assert await snapshot(api.store) == before


async def test_the_write_key_works_as_basic_user_bearer_or_in_the_body(api: Api) -> None:
    non_ascii = base64.b64encode(f"{KEYS[1]}:".encode()).decode()
    async with httpx.AsyncClient(base_url=api.url) as client:
        basic = await client.post(
            "/v1/track", json=track(1), headers={"Authorization": f"Basic {non_ascii}"}
        )
        in_body = await client.post("/v1/track", json={**track(2), "writeKey": KEYS[1]})
        bearer = await client.post(
            "/v1/track", json=track(3), headers={"Authorization": f"Bearer {KEYS[0]}"}
        )
        # Basic works on the engine's own routes too.
        native = await client.post(
            "/v1/events",
            json={"events": [{"event_id": "n1", "profile_id": "u1", "name": "clicked"}]},
            headers={"Authorization": BASIC},
        )
        # The engine's own identify body still needs a header: writeKey is Segment's.
        unauthenticated = await client.post(
            "/v1/identify", json={"profile_id": "p9", "identities": []}
        )
    assert [r.status_code for r in (basic, in_body, bearer, native)] == [200, 200, 200, 200]
    assert unauthenticated.status_code == 401
    assert sorted(e.event_id for e in await api.store.events_for("u1")) == ["m1", "m2", "m3", "n1"]


async def test_emoji_ids_are_stored_as_sent_and_a_broken_one_is_refused(api: Api) -> None:
    emoji = {"type": "identify", "userId": "用户-🎉", "anonymousId": "🙂", "traits": {"x": 1}}
    ok = await api.client.post("/v1/batch", json={"batch": [emoji, track(1, userId="用户-🎉")]})
    assert ok.status_code == 200, ok.text
    assert await api.store.resolve_profile_ids(["anon:🙂"]) == {"anon:🙂": "用户-🎉"}
    assert [e.event_id for e in await api.store.events_for("用户-🎉")] == ["m1"]

    before = await snapshot(api.store)
    broken = b'{"batch": [{"type": "track", "userId": "\\ud83c", "event": "x"}]}'
    refused = await api.client.post(
        "/v1/batch", content=broken, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400, refused.text
    assert "unicode string" in refused.json()["message"]
    assert await snapshot(api.store) == before


async def test_the_engine_s_own_identify_is_unchanged_on_the_shared_path(api: Api) -> None:
    own = await api.client.post(
        "/v1/identify",
        json={"profile_id": "crm-1", "identities": [{"type": "phone", "value": "13800138000"}]},
    )
    segment = await api.client.post("/v1/identify", json={"userId": "crm-1", "traits": {"a": 1}})
    bad_own = await api.client.post("/v1/identify", json={"identities": [{"type": "fax"}]})
    assert own.status_code == 200 and own.json()["profile_id"] == "crm-1"
    assert segment.json() == {"success": True}
    assert bad_own.status_code == 422 and "'email'" in bad_own.text
    profile = await api.store.get_profile("crm-1")
    assert profile is not None and profile.attributes == {"a": 1}
