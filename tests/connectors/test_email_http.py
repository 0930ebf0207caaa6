"""email_http against a local server speaking the SendGrid v3 mail-send API."""

from __future__ import annotations

import httpx
import pytest
from providers import API_KEY, Answer, Providers
from pydantic import SecretStr

from connectors.base import (
    ConnectorConfigError,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from connectors.email_http import EmailHttpConnector, EmailHttpSettings


def connector(base_url: str, client: httpx.AsyncClient, key: str = API_KEY) -> EmailHttpConnector:
    settings = EmailHttpSettings(
        base_url=base_url,
        api_key=SecretStr(key),
        from_address="hi@shop.test",
        from_name="鲜果铺",
    )
    return EmailHttpConnector(settings, client)


def email(to: str = "xiaoming@example.com", key: str = "cart:p1:nudge:1") -> OutboundMessage:
    return OutboundMessage(
        send_key=key,
        channel="email",
        to=to,
        content={"subject": "购物车即将清空", "text": "明天移除", "html": "<p>明天移除</p>"},
        metadata={
            "journey_id": "cart",
            "step_id": "nudge",
            "unsubscribe_url": "https://x.test/u/t",
        },
    )


async def test_the_request_has_the_provider_shape_and_the_send_key(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    receipt = await connector(providers_url, http_client).send(email())

    (request,) = providers.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["idempotency-key"] == "cart:p1:nudge:1"
    body = request.json()
    assert body["personalizations"] == [{"to": [{"email": "xiaoming@example.com"}]}]
    assert body["from"] == {"email": "hi@shop.test", "name": "鲜果铺"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"] == {
        "List-Unsubscribe": "<https://x.test/u/t>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert body["custom_args"] == {
        "send_key": "cart:p1:nudge:1",
        "journey_id": "cart",
        "step_id": "nudge",
    }
    assert receipt.provider_message_id == providers.seen_keys["cart:p1:nudge:1"]


async def test_a_resend_with_the_same_key_is_not_a_second_message(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    providers.fail_next.append(Answer(500, {"errors": []}, accept=True))
    email_http = connector(providers_url, http_client)
    with pytest.raises(RetryableSendError):
        await email_http.send(email())
    receipt = await email_http.send(email())
    assert providers.delivered == {"cart:p1:nudge:1": 1}
    assert receipt.provider_message_id == providers.seen_keys["cart:p1:nudge:1"]


async def test_429_retry_after_is_honoured_and_400_is_permanent(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    providers.fail_next.append(Answer(429, {"errors": []}, {"Retry-After": "7"}))
    email_http = connector(providers_url, http_client)
    with pytest.raises(RetryableSendError) as throttled:
        await email_http.send(email())
    assert throttled.value.retry_after == 7.0

    with pytest.raises(PermanentSendError) as refused:
        await email_http.send(email("someone@bounce.test"))
    assert refused.value.code == "http_400"
    assert "bounce.test" not in str(refused.value)


async def test_content_without_a_subject_is_refused_before_the_provider(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    message = OutboundMessage("k", "email", "a@example.com", {"text": "no subject"})
    with pytest.raises(PermanentSendError, match="subject"):
        await connector(providers_url, http_client).send(message)
    assert providers.requests == []


def test_missing_settings_are_named(http_client: httpx.AsyncClient) -> None:
    with pytest.raises(ConnectorConfigError) as info:
        EmailHttpConnector(EmailHttpSettings(), http_client)
    assert str(info.value) == (
        "JOURNEY_EMAIL_HTTP_API_KEY and JOURNEY_EMAIL_HTTP_FROM_ADDRESS are not set"
    )
