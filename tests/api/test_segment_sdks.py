"""The Segment tracking API driven by the real SDKs (segment-analytics-python and
rudder-sdk-python, which gzips), against the API on a free port with a Temporal dev server: the
profiles, merges and events land in the store, and journeys are entered and followed."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient
from temporalio.testing import WorkflowEnvironment

from engine.identity import Identity
from tests.api.conftest import KEYS, Api, api_over

pytestmark = pytest.mark.timeout(120)

SDKS: dict[str, Callable[..., Any]] = {"segment": SegmentClient, "rudderstack": RudderClient}


@pytest.fixture
async def live_api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_over(dev_env, tmp_path) as running:
        yield running


class Sdk:
    """One SDK client pointed at the API: only the host and the write key changed."""

    def __init__(self, kind: str, url: str) -> None:
        self.errors: list[Exception] = []
        self.client = SDKS[kind](
            write_key=KEYS[0],
            host=url,
            on_error=lambda error, _batch: self.errors.append(error),
            max_retries=1,
            upload_interval=0.05,
        )

    async def send(self, *calls: tuple[str, dict[str, Any]]) -> None:
        """Queue the calls and flush them (they leave as /v1/batch requests)."""

        def run() -> None:
            for method, kwargs in calls:
                getattr(self.client, method)(**kwargs)
            self.client.flush()

        await asyncio.to_thread(run)
        assert self.errors == []

    def close(self) -> None:
        self.client.join()


def journey(journey_id: str) -> dict[str, Any]:
    return {
        "id": journey_id,
        "name": "signed up, then buys",
        "entry": {"event": "signed_up"},
        "goal": {"event": "order_completed", "within": "30d"},
        "steps": [{"id": "pause", "wait": "30d"}],
    }


@pytest.mark.parametrize("kind", sorted(SDKS))
async def test_sdk_identify_track_page_alias_in_a_batch(live_api: Api, kind: str) -> None:
    h = live_api.harness
    journey_id = f"seg-{kind}-{uuid.uuid4().hex[:6]}"
    await h.deploy(journey(journey_id), {}, datetime.now(UTC))
    sdk = Sdk(kind, live_api.url)
    try:
        await sdk.send(
            ("page", {"anonymous_id": "visit-1", "name": "Home", "properties": {"path": "/"}}),
            (
                "identify",
                {
                    "user_id": "u-1",
                    "anonymous_id": "visit-1",
                    "traits": {"email": " Li.Lei@Example.COM", "plan": "pro", "name": "李雷"},
                },
            ),
            ("track", {"user_id": "u-1", "event": "Signed Up", "properties": {"via": "app"}}),
            ("alias", {"previous_id": "crm-9", "user_id": "u-1"}),
        )
    finally:
        sdk.close()

    store = live_api.store
    profile = await store.get_profile("u-1")
    assert profile is not None
    assert profile.attributes == {"email": "li.lei@example.com", "plan": "pro", "name": "李雷"}
    assert await store.identities_of("u-1") == [Identity("email", "li.lei@example.com")]
    # The anonymous visitor and the CRM id both resolve to the known user now.
    resolved = await store.resolve_profile_ids(["anon:visit-1", "crm-9"])
    assert resolved == {"anon:visit-1": "u-1", "crm-9": "u-1"}
    assert await store.count_profiles() == 1
    events = {e.name: e for e in await store.events_for("u-1")}
    assert set(events) == {"page_viewed", "signed_up"}
    assert events["page_viewed"].properties == {"name": "Home", "path": "/"}
    assert events["signed_up"].properties == {"via": "app"}
    # The tracked event entered the journey, as POST /v1/events would have.
    state = await h.until_step(journey_id, "u-1", "pause")
    assert state.step == "pause"
    [enrollment] = await store.enrollments(journey_id)
    assert enrollment.profile_id == "u-1"


@pytest.mark.parametrize("kind", sorted(SDKS))
async def test_a_run_entered_anonymously_follows_the_person_after_identify(
    live_api: Api, kind: str
) -> None:
    h = live_api.harness
    journey_id = f"seg-anon-{kind}-{uuid.uuid4().hex[:6]}"
    await h.deploy(journey(journey_id), {}, datetime.now(UTC))
    sdk = Sdk(kind, live_api.url)
    try:
        # A visitor known only by an anonymous id gets a profile, signs up and enters.
        await sdk.send(
            ("identify", {"anonymous_id": "v-7", "traits": {"source": "ad"}}),
            ("track", {"anonymous_id": "v-7", "event": "signed_up"}),
        )
        await h.until_step(journey_id, "anon:v-7", "pause")
        # They log in: the anonymous profile merges into the known one ...
        await sdk.send(("identify", {"user_id": "u-7", "anonymous_id": "v-7"}))
        # ... and the run started for the visitor converts on the user's order.
        await sdk.send(("track", {"user_id": "u-7", "event": "Order Completed"}))
    finally:
        sdk.close()

    result = await asyncio.wait_for(h.result(journey_id, "anon:v-7"), timeout=20)
    assert result.status == "converted"
    profile = await live_api.store.get_profile("anon:v-7")
    assert profile is not None and profile.id == "u-7"
    assert profile.attributes == {"source": "ad"}
    [enrollment] = await live_api.store.enrollments(journey_id)
    assert enrollment.profile_id == "u-7" and enrollment.status == "converted"


async def test_the_same_message_id_twice_is_stored_once(live_api: Api) -> None:
    sdk = Sdk("segment", live_api.url)
    try:
        for _ in range(2):
            await sdk.send(
                ("identify", {"user_id": "u-2", "traits": {"plan": "free"}, "message_id": "m-id"}),
                ("track", {"user_id": "u-2", "event": "clicked", "message_id": "m-1"}),
                ("page", {"user_id": "u-2", "name": "Cart", "message_id": "m-2"}),
            )
    finally:
        sdk.close()
    events = await live_api.store.events_for("u-2")
    assert sorted((e.event_id, e.name) for e in events) == [
        ("m-1", "clicked"),
        ("m-2", "page_viewed"),
    ]
    assert await live_api.store.count_profiles() == 1


async def test_clock_skew_is_corrected_from_sent_at(live_api: Api) -> None:
    """A client whose clock is an hour fast sent an event it recorded ten minutes before it
    sent the batch: stored as ten minutes before the server received it."""
    client_now = datetime.now(UTC) + timedelta(hours=1)
    body = {
        "batch": [
            {
                "type": "track",
                "userId": "u-3",
                "event": "opened",
                "messageId": "skew-1",
                "timestamp": (client_now - timedelta(minutes=10)).isoformat(),
            }
        ],
        "sentAt": client_now.isoformat(),
    }
    before = datetime.now(UTC)
    credentials = base64.b64encode(f"{KEYS[0]}:".encode()).decode()
    async with httpx.AsyncClient(base_url=live_api.url) as client:
        response = await client.post(
            "/v1/batch", json=body, headers={"Authorization": f"Basic {credentials}"}
        )
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    [event] = await live_api.store.events_for("u-3")
    assert before - timedelta(minutes=10, seconds=1) <= event.occurred_at
    assert event.occurred_at <= after - timedelta(minutes=10) + timedelta(seconds=1)
