"""Fixtures: a real local HTTP server standing in for a provider (uvicorn, on a free port)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from provider_stub import Provider, ProviderStub


@pytest.fixture(scope="session")
def provider_server() -> Iterator[Provider]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    stub = ProviderStub()
    config = uvicorn.Config(
        stub,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("provider stub server did not start")
        time.sleep(0.01)
    yield Provider(f"http://127.0.0.1:{port}", stub)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def provider(provider_server: Provider) -> Provider:
    provider_server.stub.requests.clear()
    return provider_server


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def refused_url() -> str:
    """A URL on a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
