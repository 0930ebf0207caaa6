"""Fixtures: a real local HTTP server standing in for a provider (uvicorn, on a free port)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller
from provider_stub import Provider, ProviderStub
from providers import Providers
from smtp_server import Mailbox

from engine.servers import free_port
from tests.harness import serve


@pytest.fixture(scope="session")
def providers_server() -> Iterator[tuple[str, Providers]]:
    """One local server speaking SendGrid, Aliyun SMS, Twilio, WeCom and FCM (see providers)."""
    app = Providers()
    with serve(app) as base_url:
        yield base_url, app


@pytest.fixture
def providers(providers_server: tuple[str, Providers]) -> Providers:
    providers_server[1].reset()
    return providers_server[1]


@pytest.fixture
def providers_url(providers_server: tuple[str, Providers]) -> str:
    return providers_server[0]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """A real aiosmtpd SMTP server on a free port; what it receives lands in the Mailbox."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[int, Mailbox]) -> Mailbox:
    smtp_server[1].reset()
    return smtp_server[1]


@pytest.fixture(scope="session")
def provider_server() -> Iterator[Provider]:
    stub = ProviderStub()
    with serve(stub) as url:
        yield Provider(url, stub)


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
