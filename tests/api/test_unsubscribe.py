"""The one-click unsubscribe link, served by a real API server over a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from engine.api import create_app
from engine.unsubscribe import BadToken, make_token, read_token, unsubscribe_url
from tests.harness import running_worker, sqlite_store

SECRET = "s3cret"


def test_tokens_round_trip_and_refuse_tampering() -> None:
    token = make_token(SECRET, "p'1; DROP", "sms")
    assert read_token(SECRET, token) == ("p'1; DROP", "sms")
    with pytest.raises(BadToken):
        read_token("other-secret", token)
    _, signature = token.split(".")
    forged = make_token(SECRET, "p2", "sms").split(".")[0] + "." + signature
    with pytest.raises(BadToken):
        read_token(SECRET, forged)
    with pytest.raises(BadToken):
        read_token(SECRET, "garbage")


@pytest.fixture
async def client(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    store = await sqlite_store(tmp_path)
    async with running_worker(time_skipping_env, store, tmp_path) as h:
        app = create_app(store, h.router, ["key"], unsubscribe_secret=SECRET)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            http.store = store  # type: ignore[attr-defined]
            yield http
    await store.aclose()


async def test_get_asks_and_post_unsubscribes_without_an_api_key(client: httpx.AsyncClient) -> None:
    store = client.store  # type: ignore[attr-defined]
    url = unsubscribe_url("http://api", SECRET, "p1", "sms")

    page = await client.get(url)
    assert page.status_code == 200 and "<form" in page.text
    assert await store.is_unsubscribed("p1", "sms") is False  # a mail scanner's GET changes nothing

    done = await client.post(url)
    assert done.status_code == 200
    assert await store.is_unsubscribed("p1", "sms") is True
    assert (await store.subscriptions("p1"))["sms"].source == "unsubscribe_link"


async def test_a_forged_link_is_refused_and_changes_nothing(client: httpx.AsyncClient) -> None:
    store = client.store  # type: ignore[attr-defined]
    forged = unsubscribe_url("http://api", "wrong-secret", "p1", "sms")
    assert (await client.post(forged)).status_code == 404
    assert await store.is_unsubscribed("p1", "sms") is False
    assert (await client.post("/v1/events", json={"events": []})).status_code == 401
