"""The one-click unsubscribe link, served by a real API server over a real SQLite store."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from temporalio.testing import WorkflowEnvironment

from engine.api import create_app
from engine.unsubscribe import BadToken, TokenExpired, make_token, read_token, unsubscribe_url
from tests.harness import running_worker, sqlite_store

SECRET = "s3cret"


def test_tokens_round_trip_and_refuse_tampering() -> None:
    token = make_token(SECRET, "p'1; DROP", "sms")
    assert read_token(SECRET, token) == ("p'1; DROP", "sms")
    with pytest.raises(BadToken):
        read_token("other-secret", token)
    _payload, stamp, signature = token.split(".")
    forged = make_token(SECRET, "p2", "sms").split(".")[0] + f".{stamp}.{signature}"
    with pytest.raises(BadToken):
        read_token(SECRET, forged)
    for garbage in ("garbage", "a.b", "a.b.c", ""):
        with pytest.raises(BadToken):
            read_token(SECRET, garbage)


def test_a_rotated_secret_keeps_old_links_working() -> None:
    sent_last_month = make_token("old-secret", "p1", "email")
    rotated = ["new-secret", "old-secret"]  # the new one signs, the old one still verifies
    assert read_token(rotated, sent_last_month) == ("p1", "email")
    new = make_token(rotated, "p1", "email")
    assert read_token("new-secret", new) == ("p1", "email")
    with pytest.raises(BadToken):
        read_token("old-secret", new)
    with pytest.raises(BadToken):  # the old secret retired: its links stop working
        read_token("new-secret", sent_last_month)


def test_tokens_expire_and_are_salted_for_unsubscribing_only() -> None:
    now = datetime.now(UTC)
    old = make_token(SECRET, "p1", "sms", now=now - timedelta(days=91))
    with pytest.raises(TokenExpired):
        read_token(SECRET, old, now=now)
    assert read_token(SECRET, old, now=now, max_age=timedelta(days=100)) == ("p1", "sms")
    # The same secret signing the same data for another purpose is not an unsubscribe link.
    other_purpose = URLSafeTimedSerializer(SECRET, salt="password-reset").dumps(["p1", "sms"])
    with pytest.raises(BadToken):
        read_token(SECRET, other_purpose)


def test_links_sent_before_tokens_were_timed_still_work() -> None:
    payload = b"p1\x1femail"
    signature = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    assert read_token(["new", SECRET], f"{b64(payload)}.{b64(signature)}") == ("p1", "email")
    with pytest.raises(BadToken):
        read_token("new", f"{b64(payload)}.{b64(signature)}")


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


async def test_an_expired_or_tampered_link_gets_a_page_not_an_error(
    client: httpx.AsyncClient,
) -> None:
    store = client.store  # type: ignore[attr-defined]
    expired = make_token(SECRET, "p1", "sms", now=datetime.now(UTC) - timedelta(days=365))
    for method in ("GET", "POST"):
        page = await client.request(method, f"/u/{expired}")
        assert page.status_code == 410
        assert "expired" in page.text and "<html" in page.text
        tampered = await client.request(method, f"/u/{expired[:-3]}abc")
        assert tampered.status_code == 404 and "not valid" in tampered.text
    assert await store.is_unsubscribed("p1", "sms") is False
