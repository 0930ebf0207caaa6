"""wecom against a local server speaking WeCom's gettoken and customer-contact message APIs."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from providers import CORP_ID, CORP_SECRET, WECOM_STRANGER, Answer, Providers
from pydantic import SecretStr

from connectors.base import OutboundMessage, PermanentSendError, RetryableSendError
from connectors.wecom import (
    MONTHLY_GROUP_MESSAGE_QUOTA,
    QUOTA,
    WeComConnector,
    WeComSettings,
    classify_errcode,
)


def wecom(base_url: str, client: httpx.AsyncClient, secret: str = CORP_SECRET) -> WeComConnector:
    settings = WeComSettings(
        base_url=base_url, corp_id=CORP_ID, secret=SecretStr(secret), sender="zhangsan"
    )
    return WeComConnector(settings, client)


def message(to: str = "wmEXTERNAL1", key: str = "j:p1:w:1", **content: str) -> OutboundMessage:
    return OutboundMessage(
        send_key=key, channel="wecom", to=to, content=content or {"text": "小明，你好"}
    )


async def test_the_token_is_fetched_once_and_cached_for_every_send(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    connector = wecom(providers_url, http_client)
    receipts = await asyncio.gather(*(connector.send(message(f"wm{i}")) for i in range(5)))

    assert providers.token_fetches == 1
    assert len({r.provider_message_id for r in receipts}) == 5
    body = providers.requests[-1].json()
    assert body["chat_type"] == "single"
    assert body["sender"] == "zhangsan"
    assert body["text"] == {"content": "小明，你好"}
    assert len(body["external_userid"]) == 1


async def test_an_expired_token_is_refreshed_once_and_the_send_goes_through(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    connector = wecom(providers_url, http_client)
    await connector.send(message("wm1"))
    providers.expire_wecom_tokens()

    receipt = await connector.send(message("wm2"))

    assert receipt.provider_message_id.startswith("msg")
    assert providers.token_fetches == 2
    assert providers.delivered == {"wm1": 1, "wm2": 1}


async def test_a_token_that_stays_expired_is_retried_later_not_in_a_loop(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    connector = wecom(providers_url, http_client)
    await connector.send(message("wm1"))
    expired = Answer(200, {"errcode": 42001, "errmsg": "access_token expired"})
    providers.fail_next.extend([expired, expired])
    with pytest.raises(RetryableSendError) as info:
        await connector.send(message("wm2"))
    assert info.value.code == "wecom_42001"
    assert providers.token_fetches == 2  # one refresh, then back to Temporal's backoff


async def test_errcodes_map_to_retryable_or_permanent(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    connector = wecom(providers_url, http_client)
    providers.fail_next.append(Answer(200, {"errcode": -1, "errmsg": "system busy"}))
    with pytest.raises(RetryableSendError):
        await connector.send(message())
    providers.fail_next.append(Answer(200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
    with pytest.raises(RetryableSendError) as freq:
        await connector.send(message())
    assert freq.value.retry_after == 1.0
    with pytest.raises(PermanentSendError) as stranger:
        await connector.send(message(WECOM_STRANGER))
    assert stranger.value.code == "wecom_fail_list"
    assert isinstance(classify_errcode(84061), PermanentSendError)  # not an external contact
    assert isinstance(classify_errcode(60020), RetryableSendError)  # IP not allow-listed


async def test_a_bad_secret_holds_messages_and_never_logs_the_token(
    providers: Providers,
    providers_url: str,
    http_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RetryableSendError) as info:
        await wecom(providers_url, http_client, secret="wrong-secret").send(message())
    assert info.value.code == "wecom_40001"
    await wecom(providers_url, http_client).send(message())
    assert "wrong-secret" not in caplog.text
    assert CORP_SECRET not in caplog.text
    assert "wecom-token-" not in caplog.text
    assert "access_token=***" in caplog.text  # httpx's request line, redacted


async def test_a_mini_program_card_is_an_attachment(
    providers: Providers, providers_url: str, http_client: httpx.AsyncClient
) -> None:
    card = {
        "miniprogram.title": "会员日",
        "miniprogram.appid": "wx123",
        "miniprogram.page": "pages/index?from=journey",
        "miniprogram.pic_media_id": "MEDIA1",
    }
    await wecom(providers_url, http_client).send(message(**card))
    body = providers.requests[-1].json()
    assert body["attachments"] == [
        {
            "msgtype": "miniprogram",
            "miniprogram": {
                "title": "会员日",
                "appid": "wx123",
                "page": "pages/index?from=journey",
                "pic_media_id": "MEDIA1",
            },
        }
    ]
    assert "text" not in body
    with pytest.raises(PermanentSendError, match="pic_media_id"):
        await wecom(providers_url, http_client).send(message(**{"miniprogram.title": "x"}))


def test_the_monthly_group_message_quota_is_exposed_for_the_cap_service(
    http_client: httpx.AsyncClient,
) -> None:
    assert MONTHLY_GROUP_MESSAGE_QUOTA == 4
    assert (QUOTA.max, QUOTA.window, QUOTA.kind) == (4, "month", "group_message")
    settings = WeComSettings(corp_id="c", secret=SecretStr("s"), sender="u")
    assert WeComConnector(settings, http_client).quota is QUOTA
