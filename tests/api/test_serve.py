"""serve_api: runs in the caller's loop, stops when asked, fails loudly when it cannot bind."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from engine.api import create_app, serve_api
from engine.services.enroll import Enroller
from engine.services.events import EventRouter
from tests.api.conftest import serving
from tests.harness import sqlite_store

pytestmark = pytest.mark.timeout(60)


async def test_a_taken_port_raises_instead_of_exiting_the_process(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store = await sqlite_store(tmp_path)
    client = time_skipping_env.client
    app = create_app(store, EventRouter(store, client, Enroller(store, client, "q")), ["k"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await serve_api(app, "127.0.0.1", port, asyncio.Event())
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as probe:
        assert (await probe.get("/healthz")).status_code == 200
    # After serving() has returned, the server is gone.
    async with httpx.AsyncClient(base_url=url) as probe:
        with pytest.raises(httpx.ConnectError):
            await probe.get("/healthz")
    await store.aclose()
