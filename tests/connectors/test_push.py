"""push against a local server speaking FCM HTTP v1."""

from __future__ import annotations

import httpx
import pytest
from providers import FCM_GONE, FCM_PROJECT, FCM_TOKEN, Answer, Providers
from pydantic import SecretStr

from connectors.base import (
    ConnectorConfigError,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from connectors.push import PushConnector, PushSettings


def push(base_url: str, client: httpx.AsyncClient) -> PushConnector:
    settings = PushSettings(
        base_url=base_url, project_id=FCM_PROJECT, access_token=SecretStr(FCM_TOKEN)
    )
    return PushConnector(settings, client)


def notification(to: str = "device-1", key: str = "j:p1:push:1") -> OutboundMessage:
    return OutboundMessage(
        send_key=key,
        channel="push",
        to=to,
        content={"title": "会员日", "body": "今天全场8折", "data.deeplink": "shop://sale"},
    )


async def test_the_message_has_the_fcm_v1_shape(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    receipt = await push(providers_url, http_client).send(notification())
    (request,) = providers.requests
    assert request.path == f"/v1/projects/{FCM_PROJECT}/messages:send"
    message = request.json()["message"]
    assert message["token"] == "device-1"
    assert message["notification"] == {"title": "会员日", "body": "今天全场8折"}
    assert message["data"] == {"deeplink": "shop://sale", "send_key": "j:p1:push:1"}
    assert receipt.provider_message_id.startswith(f"projects/{FCM_PROJECT}/messages/")


async def test_fcm_error_codes_map_to_retryable_and_permanent(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    connector = push(providers_url, http_client)
    with pytest.raises(PermanentSendError) as gone:
        await connector.send(notification(FCM_GONE))
    assert gone.value.code == "UNREGISTERED"

    providers.rate(0.001, burst=1)
    await connector.send(notification())
    with pytest.raises(RetryableSendError) as quota:
        await connector.send(notification(key="k2"))
    assert (quota.value.code, quota.value.retry_after) == ("QUOTA_EXCEEDED", 2.0)

    providers.bucket = None
    providers.fail_next.append(Answer(503, {"error": {"code": 503, "status": "UNAVAILABLE"}}))
    with pytest.raises(RetryableSendError) as unavailable:
        await connector.send(notification())
    assert unavailable.value.code == "UNAVAILABLE"


async def test_a_token_endpoint_token_is_refreshed_once_on_401(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    handed_out = iter(["stale-token", FCM_TOKEN])

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        assert request.headers["Metadata-Flavor"] == "Google"
        return httpx.Response(200, json={"access_token": next(handed_out), "expires_in": 3600})

    tokens = httpx.AsyncClient(transport=httpx.MockTransport(token_endpoint))

    class Routing(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.host == "metadata.test":
                return await tokens._transport.handle_async_request(request)
            return await http_client._transport.handle_async_request(request)

    async with httpx.AsyncClient(transport=Routing()) as client:
        settings = PushSettings(
            base_url=providers_url,
            project_id=FCM_PROJECT,
            token_url="http://metadata.test/token",
        )
        connector = PushConnector(settings, client)
        await connector.send(notification())
    assert connector.tokens.fetches == 2
    assert len(providers.delivered) == 1
    await tokens.aclose()


def test_no_token_source_is_a_named_config_error(http_client: httpx.AsyncClient) -> None:
    with pytest.raises(ConnectorConfigError) as info:
        PushConnector(PushSettings(project_id="p"), http_client)
    assert info.value.env_var == "JOURNEY_PUSH_ACCESS_TOKEN"
