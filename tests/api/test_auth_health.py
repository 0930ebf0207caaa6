"""Bearer API keys, the refusal to start without them, and the health check."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from engine.api import ApiConfigError, create_app
from engine.services.enroll import Enroller
from engine.services.events import EventRouter
from engine.store import Store
from tests.api.conftest import KEYS, Api, serving

pytestmark = pytest.mark.timeout(60)

ONE_EVENT = {"events": [{"profile_id": "p1", "name": "page_viewed"}]}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing API key"),
        ({"Authorization": f"Basic {KEYS[0]}"}, "missing API key"),
        ({"Authorization": "Bearer"}, "missing API key"),
        ({"Authorization": "Bearer not-a-key"}, "invalid API key"),
        ({"Authorization": f"Bearer {KEYS[0]}x"}, "invalid API key"),
        ({"Authorization": f"Bearer {KEYS[0][:-1]}"}, "invalid API key"),
    ],
)
async def test_without_a_valid_key_the_api_says_401_and_stores_nothing(
    api: Api, headers: dict[str, str], detail: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=headers) as anonymous:
        for path, body in (
            ("/v1/events", ONE_EVENT),
            ("/v1/profiles", {"profiles": [{"id": "p1"}]}),
        ):
            response = await anonymous.post(path, json=body)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert detail in response.json()["detail"]
    assert await api.store.events_for("p1") == []
    assert await api.store.get_profile("p1") is None


async def test_auth_is_checked_before_the_body_is_parsed(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        response = await anonymous.post(
            "/v1/events", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 401


async def test_every_configured_key_works_including_non_ascii_ones(api: Api) -> None:
    for key in KEYS:
        header = f"Bearer {key}".encode()
        async with httpx.AsyncClient(base_url=api.url) as client:
            response = await client.post(
                "/v1/events", json=ONE_EVENT, headers={b"Authorization": header}
            )
        assert response.status_code == 200, response.text


async def test_healthz_needs_no_key_and_docs_are_served(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        health = await anonymous.get("/healthz")
        docs = await anonymous.get("/docs")
        schema = (await anonymous.get("/openapi.json")).json()
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert docs.status_code == 200
    assert {"/v1/events", "/v1/profiles", "/healthz"} <= set(schema["paths"])
    assert schema["paths"]["/v1/events"]["post"]["security"] == [{"HTTPBearer": []}]


async def test_a_store_that_cannot_be_reached_gives_503_with_a_reason(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # A real SQLite store whose file cannot be opened: its directory is a regular file.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = Store.from_url(f"sqlite+aiosqlite:///{blocker / 'journey.db'}")
    enroller = Enroller(store, time_skipping_env.client, "unused")
    app = create_app(store, EventRouter(store, time_skipping_env.client, enroller), KEYS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://api",
        headers={"Authorization": f"Bearer {KEYS[0]}"},
    ) as client:
        health = await client.get("/healthz")
        ingest = await client.post("/v1/events", json=ONE_EVENT)
        upsert = await client.post("/v1/profiles", json={"profiles": [{"id": "p1"}]})
    await store.aclose()
    assert health.status_code == 503
    assert health.json() == {
        "status": "unavailable",
        "reason": "store unavailable (OperationalError)",
    }
    assert ingest.status_code == 503
    assert ingest.headers["retry-after"] == "5"
    assert ingest.json()["failed_index"] == 0
    assert ingest.json()["results"] == []
    assert "Resend the batch" in ingest.json()["detail"]
    assert upsert.status_code == 503
    assert "nothing was written" in upsert.json()["detail"]


def test_the_api_refuses_to_start_without_keys(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    router = EventRouter(
        store, time_skipping_env.client, Enroller(store, time_skipping_env.client, "q")
    )
    with pytest.raises(ApiConfigError, match="JOURNEY_API_KEYS"):
        create_app(store, router, [])
    with pytest.raises(ApiConfigError, match="empty"):
        create_app(store, router, ["good-key", "  "])


async def test_allow_anonymous_serves_without_keys(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from tests.harness import sqlite_store

    store = await sqlite_store(tmp_path)
    router = EventRouter(
        store, time_skipping_env.client, Enroller(store, time_skipping_env.client, "q")
    )
    app = create_app(store, router, [], allow_anonymous=True)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/v1/events", json=ONE_EVENT)
    await store.aclose()
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "accepted"
