"""The API served by a real uvicorn server on a free port, over a real SQLite store and a real
Temporal server with a worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from engine.api import create_app, serve_api
from engine.servers import free_port
from engine.store import Store
from tests.harness import Harness, running_worker, sqlite_store

KEYS = ["first-key-0123456789", "second-key-ÄÖÜ-éè"]


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` on a free port; yields its base URL once /healthz answers."""
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve_api(app, "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url) as probe:
        for _ in range(200):
            if task.done():
                await task  # raises why it stopped
            try:
                if (await probe.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.025)
        else:
            raise TimeoutError("the API did not start")
    try:
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


@dataclass
class Api:
    url: str
    client: httpx.AsyncClient
    """Sends the first API key on every request."""
    store: Store
    harness: Harness


@asynccontextmanager
async def api_over(env: WorkflowEnvironment, directory: Path) -> AsyncIterator[Api]:
    store = await sqlite_store(directory)
    try:
        async with running_worker(env, store, directory) as harness:
            app = create_app(store, harness.router, KEYS)
            async with (
                serving(app) as url,
                httpx.AsyncClient(
                    base_url=url, headers={"Authorization": f"Bearer {KEYS[0]}"}, timeout=30
                ) as client,
            ):
                yield Api(url, client, store, harness)
    finally:
        await store.aclose()


@pytest.fixture
async def api(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_over(time_skipping_env, tmp_path) as running:
        yield running
