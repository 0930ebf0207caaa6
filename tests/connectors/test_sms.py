"""sms against local servers speaking the Aliyun SendSms RPC API and Twilio's Messages API."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from providers import (
    ALIYUN_KEY_ID,
    ALIYUN_SECRET,
    TWILIO_SID,
    TWILIO_TOKEN,
    Answer,
    Providers,
)
from pydantic import SecretStr

from connectors.base import OutboundMessage, PermanentSendError, RetryableSendError, SendLimits
from connectors.limits import LimitedConnector
from connectors.sms import SmsConnector, SmsSettings


def aliyun(base_url: str, client: httpx.AsyncClient, secret: str = ALIYUN_SECRET) -> SmsConnector:
    settings = SmsSettings(
        base_url=base_url,
        access_key_id=ALIYUN_KEY_ID,
        access_key_secret=SecretStr(secret),
        sign_name="鲜果铺",
    )
    return SmsConnector(settings, client)


def twilio(base_url: str, client: httpx.AsyncClient) -> SmsConnector:
    settings = SmsSettings(
        provider="twilio",
        base_url=base_url,
        account_sid=TWILIO_SID,
        auth_token=SecretStr(TWILIO_TOKEN),
        from_number="+15550001111",
    )
    return SmsConnector(settings, client)


def sms(to: str = "+8613800000001", key: str = "j:p1:s:1", **content: str) -> OutboundMessage:
    fields = content or {
        "template_code": "SMS_NEEDS_NAME",
        "params.name": "小明",
        "text": "【鲜果铺】小明，新人券已到账",
    }
    return OutboundMessage(send_key=key, channel="sms", to=to, content=fields)


async def test_aliyun_gets_a_signed_template_call_with_the_send_key_as_out_id(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    receipt = await aliyun(providers_url, http_client).send(sms())

    form = providers.requests[0].form()
    assert form["Action"] == "SendSms"
    assert form["PhoneNumbers"] == "8613800000001"
    assert form["SignName"] == "鲜果铺"
    assert form["TemplateCode"] == "SMS_NEEDS_NAME"
    assert json.loads(form["TemplateParam"]) == {"name": "小明"}
    assert form["OutId"] == "j:p1:s:1"
    assert receipt.provider_message_id == providers.seen_keys["j:p1:s:1"]


async def test_aliyun_business_codes_map_to_retryable_and_permanent(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    connector = aliyun(providers_url, http_client)
    with pytest.raises(PermanentSendError) as bad_number:
        await connector.send(sms(to="0001234567"))
    assert bad_number.value.code == "isv.MOBILE_NUMBER_ILLEGAL"
    with pytest.raises(PermanentSendError) as missing:
        await connector.send(sms(template_code="SMS_NEEDS_NAME"))
    assert missing.value.code == "isv.TEMPLATE_MISSING_PARAMETERS"

    providers.fail_next.append(Answer(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL"}))
    with pytest.raises(RetryableSendError) as flow:
        await connector.send(sms())
    assert (flow.value.code, flow.value.retry_after) == ("isv.BUSINESS_LIMIT_CONTROL", 60.0)

    providers.fail_next.append(Answer(400, {"Code": "Throttling.User"}))
    with pytest.raises(RetryableSendError) as throttled:
        await connector.send(sms())
    assert throttled.value.code == "Throttling.User"


async def test_a_wrong_secret_holds_messages_instead_of_failing_the_person(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(RetryableSendError) as info:
        await aliyun(providers_url, http_client, secret="wrong").send(sms())
    assert info.value.code == "SignatureDoesNotMatch"


async def test_an_invalid_number_never_reaches_the_provider(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(PermanentSendError) as info:
        await aliyun(providers_url, http_client).send(sms(to="call me"))
    assert info.value.code == "invalid_address"
    assert providers.requests == []


async def test_twilio_style_sends_the_text_with_basic_auth(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    connector = twilio(providers_url, http_client)
    receipt = await connector.send(sms())
    (request,) = providers.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.form() == {
        "To": "+8613800000001",
        "From": "+15550001111",
        "Body": "【鲜果铺】小明，新人券已到账",
    }
    assert request.headers["i-twilio-idempotency-token"] == "j:p1:s:1"
    assert receipt.provider_message_id.startswith("SM")

    providers.fail_next.append(Answer(429, {"code": 20429}, {"Retry-After": "3"}))
    with pytest.raises(RetryableSendError) as throttled:
        await connector.send(sms())
    assert (throttled.value.code, throttled.value.retry_after) == ("20429", 3.0)
    with pytest.raises(PermanentSendError) as invalid:
        await connector.send(sms(to="8613800000001"))
    assert invalid.value.code == "21211"


async def test_the_rate_limit_keeps_a_burst_under_the_providers_throttle(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    providers.rate(40, burst=4)  # the provider throttles past 40/s
    unlimited = aliyun(providers_url, http_client)
    results = await asyncio.gather(
        *(unlimited.send(sms(key=f"a{i}")) for i in range(20)), return_exceptions=True
    )
    assert any(isinstance(r, RetryableSendError) and r.code == "Throttling.User" for r in results)

    await asyncio.sleep(0.2)
    providers.reset()
    providers.rate(40, burst=4)
    # Below the provider's rate, with room for requests bunched up on the way.
    limited = LimitedConnector(
        aliyun(providers_url, http_client), SendLimits(rate_per_second=20, burst=1)
    )
    await asyncio.gather(*(limited.send(sms(key=f"b{i}")) for i in range(20)))
    assert providers.throttled == 0
    assert len(providers.delivered) == 20
