"""The webhook connector against a real local HTTP server standing in for the receiver."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from provider_stub import ProviderStub
from standardwebhooks import Webhook, WebhookVerificationError
from structlog.testing import capture_logs

from connectors.base import (
    Connector,
    ConnectorConfigError,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from connectors.webhook import WebhookConnector, sign, verify_signature
from tests.harness import serve

if TYPE_CHECKING:
    from provider_stub import Provider

ADDRESS = "lin.wei@example.com"


def message(send_key: str = "cart:p1:copy_a:1") -> OutboundMessage:
    return OutboundMessage(
        send_key=send_key,
        channel="email",
        to=ADDRESS,
        content={"subject": "别忘了购物车", "text": "Your cart misses you"},
        metadata={"journey_id": "cart", "step_id": "copy_a", "profile_id": "p1"},
    )


def connector(
    provider: Provider, client: httpx.AsyncClient, path: str = "/ok", **kwargs: object
) -> WebhookConnector:
    return WebhookConnector(provider.base_url + path, provider.secret, client, **kwargs)  # type: ignore[arg-type]


async def test_posts_a_signed_json_body_with_the_idempotency_key(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    hook = connector(provider, http_client)
    assert isinstance(hook, Connector)
    receipt = await hook.send(message())

    (request,) = provider.requests
    assert request.method == "POST"
    assert request.signature_valid  # checked by the server with verify_signature
    assert request.headers["idempotency-key"] == "cart:p1:copy_a:1"
    assert request.headers["content-type"].startswith("application/json")
    assert abs(int(request.headers["x-journey-timestamp"]) - time.time()) < 60
    assert request.json() == {
        "send_key": "cart:p1:copy_a:1",
        "channel": "email",
        "to": ADDRESS,
        "content": {"subject": "别忘了购物车", "text": "Your cart misses you"},
        "metadata": {"journey_id": "cart", "step_id": "copy_a", "profile_id": "p1"},
    }
    assert receipt.provider_message_id == "prov-1"


async def test_a_receiver_with_another_secret_rejects_it_permanently(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    hook = WebhookConnector(provider.base_url + "/ok", "not-the-secret", http_client)
    with pytest.raises(PermanentSendError) as info:
        await hook.send(message())
    assert info.value.code == "bad_signature"
    assert provider.requests[0].signature_valid is False


async def test_without_an_id_in_the_response_the_receipt_id_derives_from_the_send_key(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    hook = connector(provider, http_client, "/no-id")
    first = await hook.send(message("k-1"))
    again = await hook.send(message("k-1"))
    other = await hook.send(message("k-2"))
    expected = "webhook-" + hashlib.sha256(b"k-1").hexdigest()[:32]
    assert first.provider_message_id == again.provider_message_id == expected
    assert other.provider_message_id != expected


async def test_a_send_step_target_overrides_the_default_url_and_secret(
    provider: Provider,
    http_client: httpx.AsyncClient,
    refused_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", provider.secret)
    hook = WebhookConnector(refused_url, "the-default-secret", http_client)
    step = OutboundMessage(
        send_key="crm:p1:tell_crm",
        channel="webhook",
        to="p1",
        content={"text": "hot lead"},
        options={
            "webhook_url": provider.base_url + "/ok",
            "webhook_secret_env": "CRM_WEBHOOK_SECRET",
        },
    )

    await hook.send(step)

    (request,) = provider.requests
    assert request.path == "/ok"
    assert request.signature_valid  # signed with the step's secret, not the default


async def test_a_step_secret_variable_the_worker_lacks_fails_permanently_by_name(
    provider: Provider, http_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_WEBHOOK_SECRET", raising=False)
    hook = connector(provider, http_client)
    step = OutboundMessage(
        send_key="k",
        channel="webhook",
        to="p1",
        content={},
        options={"webhook_secret_env": "CRM_WEBHOOK_SECRET"},
    )
    with pytest.raises(PermanentSendError) as info:
        await hook.send(step)
    assert info.value.code == "secret_env_missing:CRM_WEBHOOK_SECRET"
    assert provider.requests == []


async def test_500_is_retryable(provider: Provider, http_client: httpx.AsyncClient) -> None:
    with pytest.raises(RetryableSendError) as info:
        await connector(provider, http_client, "/status/500").send(message())
    assert info.value.code == "http_500"
    assert info.value.retry_after is None


async def test_429_is_retryable_after_the_providers_delay(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(RetryableSendError) as info:
        await connector(provider, http_client, "/status/429?retry_after=7").send(message())
    assert info.value.retry_after == 7
    assert info.value.code == "http_429"


async def test_400_is_permanent_with_the_providers_code(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    hook = connector(provider, http_client, "/status/400?error_code=invalid_address")
    with pytest.raises(PermanentSendError) as info:
        await hook.send(message())
    assert info.value.code == "invalid_address"
    assert ADDRESS not in str(info.value)


async def test_404_without_a_body_is_permanent(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(PermanentSendError) as info:
        await connector(provider, http_client, "/status/404").send(message())
    assert info.value.code == "http_404"


async def test_connection_refused_is_retryable(
    refused_url: str, http_client: httpx.AsyncClient
) -> None:
    hook = WebhookConnector(refused_url, "secret", http_client)
    with pytest.raises(RetryableSendError) as info:
        await hook.send(message())
    assert info.value.code == "connection_error"
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_a_slow_receiver_times_out_as_retryable(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    hook = connector(provider, http_client, "/slow?seconds=1", timeout=0.2)
    with pytest.raises(RetryableSendError) as info:
        await hook.send(message())
    assert info.value.code == "timeout"


async def test_logs_the_send_without_address_or_content(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    with capture_logs() as logs:
        await connector(provider, http_client).send(message())
        with pytest.raises(PermanentSendError):
            await connector(provider, http_client, "/status/422").send(message())

    assert [entry["event"] for entry in logs] == ["message_sent"]
    assert logs[0]["send_key"] == "cart:p1:copy_a:1"
    assert logs[0]["channel"] == "email"
    logged = repr(logs)
    assert ADDRESS not in logged
    assert "购物车" not in logged
    assert "misses you" not in logged
    assert provider.secret not in logged


@pytest.mark.parametrize(
    ("url", "secret"),
    [("ftp://example.com/hook", "s"), ("/relative", "s"), ("http://", "s"), ("https://x.io", "")],
)
async def test_invalid_settings_are_config_errors(
    url: str, secret: str, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(ConnectorConfigError):
        WebhookConnector(url, secret, http_client)


# --- signatures, for receivers --------------------------------------------------------------


def test_verify_signature_accepts_a_fresh_signature_and_rejects_a_stale_one() -> None:
    body = b'{"send_key":"k"}'
    header = sign("s", 1_700_000_000, body)
    assert header.startswith("sha256=")
    assert verify_signature("s", "1700000000", body, header, now=1_700_000_100)
    assert verify_signature("s", 1_700_000_000, body.decode(), header, now=1_700_000_000)
    assert not verify_signature("s", "1700000000", body, header, now=1_700_000_301)
    assert not verify_signature("s", "1700000000", body, header, now=1_699_999_699)
    assert verify_signature("s", "1700000000", body, header, tolerance_s=3600, now=1_700_003_000)


@pytest.mark.parametrize(
    ("timestamp", "header"),
    [(None, "sha256=00"), ("1700000000", None), ("1700000000", ""), ("soon", "sha256=00")],
)
def test_verify_signature_is_false_for_missing_or_malformed_input(
    timestamp: str | None, header: str | None
) -> None:
    assert not verify_signature("s", timestamp, b"{}", header, now=1_700_000_000)


@given(
    secret=st.text(min_size=1),
    body=st.binary(),
    timestamp=st.integers(min_value=0, max_value=2**40),
    tampered=st.binary(min_size=1),
)
def test_a_signature_verifies_only_the_body_time_and_secret_it_was_made_for(
    secret: str, body: bytes, timestamp: int, tampered: bytes
) -> None:
    header = sign(secret, timestamp, body)
    assert verify_signature(secret, timestamp, body, header, now=timestamp)
    assert not verify_signature(secret, timestamp, body + tampered, header, now=timestamp)
    assert not verify_signature(secret + "x", timestamp, body, header, now=timestamp)
    assert not verify_signature(secret, timestamp + 1, body, header, now=timestamp)


# --- Standard Webhooks ----------------------------------------------------------------------


async def test_requests_verify_with_the_standard_webhooks_library(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    await connector(provider, http_client).send(message("cart:p1:copy_a:7"))
    (request,) = provider.requests
    headers = request.headers
    assert headers["webhook-id"] == "cart:p1:copy_a:7"
    assert headers["webhook-signature"].startswith("v1,")
    # What a receiver writes: the library, the raw body, the headers.
    payload = Webhook(provider.secret.encode()).verify(request.body, headers)
    assert payload["send_key"] == "cart:p1:copy_a:7"
    with pytest.raises(WebhookVerificationError):
        Webhook(b"another-secret").verify(request.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(provider.secret.encode()).verify(request.body + b" ", headers)


async def test_a_whsec_secret_signs_with_its_decoded_key(http_client: httpx.AsyncClient) -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    stub = ProviderStub(secret)
    with serve(stub) as url:
        hook = WebhookConnector(url + "/ok", secret, http_client)
        await hook.send(message())
        await hook.send(message())  # a resend: the same webhook-id, for the receiver's dedup
    first, again = stub.requests
    assert first.signature_valid and again.signature_valid
    Webhook(secret).verify(first.body, first.headers)
    assert first.headers["webhook-id"] == again.headers["webhook-id"]


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_"])
async def test_a_malformed_whsec_secret_is_a_config_error(
    secret: str, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(ConnectorConfigError, match="whsec_"):
        WebhookConnector("https://x.io/hook", secret, http_client)
