"""PUT /v1/profiles/{id}/subscriptions/{channel}: consent through the API."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.timeout(60)


async def test_unsubscribing_and_resubscribing_is_recorded_with_its_source(api: Api) -> None:
    made = await api.client.post(
        "/v1/identify", json={"identities": [{"type": "email", "value": "a@example.com"}]}
    )
    pid = made.json()["profile_id"]

    response = await api.client.put(
        f"/v1/profiles/{pid}/subscriptions/email",
        json={"status": "unsubscribed", "source": "wecom"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["profile_id"], body["channel"], body["status"], body["source"]) == (
        pid,
        "email",
        "unsubscribed",
        "wecom",
    )
    assert await api.store.is_unsubscribed(pid, "email")
    back = await api.client.put(
        f"/v1/profiles/{pid}/subscriptions/email", json={"status": "subscribed"}
    )
    assert back.json()["source"] == "api"
    assert not await api.store.is_unsubscribed(pid, "email")


async def test_a_merged_id_sets_the_survivors_consent(api: Api) -> None:
    a = (await api.client.post("/v1/identify", json={"profile_id": "a"})).json()
    b = (
        await api.client.post(
            "/v1/identify",
            json={"profile_id": "b", "identities": [{"type": "app_user_id", "value": "u"}]},
        )
    ).json()
    await api.client.post(
        "/v1/identify",
        json={"profile_id": "a", "identities": [{"type": "app_user_id", "value": "u"}]},
    )
    response = await api.client.put(
        f"/v1/profiles/{b['profile_id']}/subscriptions/sms", json={"status": "unsubscribed"}
    )
    assert response.json()["profile_id"] == a["profile_id"]
    assert await api.store.is_unsubscribed(a["profile_id"], "sms")


@pytest.mark.parametrize(
    ("path", "body", "status", "phrase"),
    [
        ("/v1/profiles/nobody/subscriptions/sms", {"status": "unsubscribed"}, 404, "no profile"),
        ("/v1/profiles/p1/subscriptions/SMS", {"status": "unsubscribed"}, 422, "pattern"),
        ("/v1/profiles/p1/subscriptions/sms'--", {"status": "unsubscribed"}, 422, "pattern"),
        ("/v1/profiles/p1/subscriptions/sms", {"status": "maybe"}, 422, "'subscribed'"),
        ("/v1/profiles/p1/subscriptions/sms", {"status": True}, 422, "'subscribed'"),
        ("/v1/profiles/p1/subscriptions/sms", {}, 422, "Field required"),
        (
            "/v1/profiles/p1/subscriptions/sms",
            {"status": "unsubscribed", "source": "x" * 65},
            422,
            "pattern",
        ),
        ("/v1/profiles/" + "p" * 129 + "/subscriptions/sms", {"status": "subscribed"}, 422, "128"),
    ],
)
async def test_bad_subscription_requests_are_4xx_and_change_nothing(
    api: Api, path: str, body: dict[str, object], status: int, phrase: str
) -> None:
    await api.client.post("/v1/identify", json={"profile_id": "p1"})
    response = await api.client.put(path, json=body)
    assert response.status_code == status, response.text
    assert phrase in response.text
    assert await api.store.subscriptions("p1") == {}
