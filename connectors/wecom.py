"""The ``wecom`` connector (企业微信): a message to an external contact (customer).

Uses the customer-contact group-message API: ``POST {base_url}/cgi-bin/externalcontact/
add_msg_template?access_token=...`` with ``chat_type: single``, the customer's
``external_userid``, the sending employee (``sender``), a ``text`` and optional mini-program card
attachment. The access token comes from ``GET /cgi-bin/gettoken?corpid=&corpsecret=``, is cached
until shortly before ``expires_in``, and is refreshed once when an answer says it expired
(:data:`TOKEN_EXPIRED`).

WeCom answers HTTP 200 with an ``errcode``; :func:`classify_errcode` maps it: system busy and
frequency limits retry, configuration errors (bad secret, IP not allow-listed) retry so messages
wait for the operator, the rest (not a contact, bad id, no permission) are permanent with code
``wecom_<errcode>``. A customer in the answer's ``fail_list`` is permanent (``wecom_fail_list``).

WeCom has no idempotency key: a resend after a timeout may reach the person twice.

**Quota**: a customer receives at most :data:`MONTHLY_GROUP_MESSAGE_QUOTA` group messages a month
from one company (WeCom silently drops the rest). :data:`QUOTA` (also ``WeComConnector.quota``)
states it for the cap service to enforce on top of the policy (per profile, channel ``wecom``,
calendar month in Asia/Shanghai, WeCom's own time).

Content fields: ``text`` and/or ``miniprogram.title``, ``miniprogram.appid``,
``miniprogram.page``, ``miniprogram.pic_media_id``; ``sender`` overrides the default employee.

Settings (``JOURNEY_WECOM_*``): ``CORP_ID``, ``SECRET`` (the customer-contact secret), ``SENDER``
(default employee userid), ``BASE_URL`` (``https://qyapi.weixin.qq.com``), common limits.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

import httpx
import structlog
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from connectors.base import (
    ConnectorConfigError,
    DeliveryGuarantee,
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    ProviderQuota,
    ProviderSettings,
    RetryableSendError,
    SendLimits,
    TokenCache,
    accepted,
    classify_transport_error,
    raise_for_response,
    secret,
)

log = structlog.get_logger(__name__)

MONTHLY_GROUP_MESSAGE_QUOTA = 4
QUOTA = ProviderQuota(
    max=MONTHLY_GROUP_MESSAGE_QUOTA,
    window="month",
    kind="group_message",
    description="WeCom: a customer receives at most 4 group messages a month from one company",
    timezone="Asia/Shanghai",
)

TOKEN_EXPIRED = frozenset({40014, 42001, 41001})
"""invalid access_token, access_token expired, access_token missing: refresh once."""
RETRYABLE = frozenset({-1, 45009, 45033, 45011, 45047})
"""system busy, API frequency limit, too many concurrent calls, minute quota, queue full."""
CONFIG = frozenset({40001, 40013, 40091, 48002, 60020, 41004})
"""bad secret or corp id, API not allowed for this secret, IP not allow-listed."""

_TOKEN_IN_URL = re.compile(r"(access_token|corpsecret)=[^&\s\"']+")


class _RedactTokens(logging.Filter):
    """httpx logs every request URL at INFO; WeCom puts the token (and secret) in the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message or "corpsecret=" in message:
            record.msg, record.args = _TOKEN_IN_URL.sub(r"\1=***", message), None
        return True


_REDACT = _RedactTokens()


class WeComSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_WECOM_", extra="ignore")

    base_url: str = "https://qyapi.weixin.qq.com"
    corp_id: str | None = None
    secret: SecretStr | None = None
    sender: str | None = None

    default_rate_per_second = 20.0


def classify_errcode(errcode: int) -> RetryableSendError | PermanentSendError:
    reason = f"wecom answered errcode {errcode}"
    code = f"wecom_{errcode}"
    if errcode in RETRYABLE or errcode in TOKEN_EXPIRED:
        return RetryableSendError(reason, retry_after=1.0 if errcode == 45009 else None, code=code)
    if errcode in CONFIG:
        return RetryableSendError(reason + " (configuration)", code=code)
    return PermanentSendError(reason, code=code)


class WeComConnector:
    name = "wecom"
    # WeCom has no idempotency key: a resend is a second message.
    delivery: ClassVar[DeliveryGuarantee] = "at_most_once"
    quota = QUOTA

    def __init__(self, settings: WeComSettings, client: httpx.AsyncClient) -> None:
        settings.require("corp_id", "secret", "sender")
        try:
            self._base = httpx.URL(settings.base_url.rstrip("/"))
        except httpx.InvalidURL as exc:
            raise ConnectorConfigError(
                f"JOURNEY_WECOM_BASE_URL: {exc}", env_var="JOURNEY_WECOM_BASE_URL"
            ) from exc
        self._settings = settings
        self._client = client
        self.tokens = TokenCache(self._fetch_token)
        self.limits: SendLimits = settings.limits()
        httpx_log = logging.getLogger("httpx")
        if _REDACT not in httpx_log.filters:
            httpx_log.addFilter(_REDACT)

    @classmethod
    def from_env(cls, client: httpx.AsyncClient) -> WeComConnector:
        return cls(WeComSettings.load(), client)

    async def _fetch_token(self) -> tuple[str, float]:
        try:
            response = await self._client.get(
                self._base.join("/cgi-bin/gettoken"),
                params={
                    "corpid": self._settings.corp_id or "",
                    "corpsecret": secret(self._settings.secret),
                },
                timeout=self._settings.timeout,
            )
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc) from None
        raise_for_response(response)
        body = _json(response)
        errcode = int(body.get("errcode", 0) or 0)
        token = body.get("access_token")
        if errcode != 0 or not isinstance(token, str) or not token:
            log.error("provider_misconfigured", connector=self.name, code=f"wecom_{errcode}")
            # Whatever gettoken refuses is configuration: never the customer's failure.
            raise RetryableSendError(
                f"wecom refused an access token (errcode {errcode})", code=f"wecom_{errcode}"
            )
        return token, float(body.get("expires_in", 7200))

    def body(self, message: OutboundMessage) -> dict[str, Any]:
        content = message.content
        sender = content.get("sender") or self._settings.sender
        body: dict[str, Any] = {
            "chat_type": "single",
            "external_userid": [message.to],
            "sender": sender,
            "allow_select": False,
        }
        if content.get("text"):
            body["text"] = {"content": content["text"]}
        card = {k.split(".", 1)[1]: v for k, v in content.items() if k.startswith("miniprogram.")}
        if card:
            missing = {"title", "appid", "page", "pic_media_id"} - card.keys()
            if missing:
                raise PermanentSendError(
                    f"mini-program card lacks {', '.join(sorted(missing))}", code="content"
                )
            body["attachments"] = [{"msgtype": "miniprogram", "miniprogram": card}]
        if "text" not in body and "attachments" not in body:
            raise PermanentSendError("wecom needs a text or a mini-program card", code="content")
        return body

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if not message.to.strip():
            raise PermanentSendError("no external_userid", code="invalid_address")
        body = self.body(message)
        refreshed = False
        while True:
            token = await self.tokens.get()
            try:
                response = await self._client.post(
                    self._base.join("/cgi-bin/externalcontact/add_msg_template"),
                    params={"access_token": token},
                    json=body,
                    timeout=self._settings.timeout,
                )
            except httpx.HTTPError as exc:
                raise classify_transport_error(exc) from None
            raise_for_response(response)
            answer = _json(response)
            errcode = int(answer.get("errcode", 0) or 0)
            if errcode in TOKEN_EXPIRED and not refreshed:
                self.tokens.invalidate(token)
                refreshed = True
                log.info("access_token_refreshed", connector=self.name, code=errcode)
                continue
            break
        if errcode != 0:
            error = classify_errcode(errcode)
            if errcode in CONFIG:
                log.error("provider_misconfigured", connector=self.name, code=error.code)
            raise error
        if message.to in (answer.get("fail_list") or []):
            raise PermanentSendError("wecom could not reach the customer", code="wecom_fail_list")
        provider_id = str(answer.get("msgid") or "")
        if not provider_id:
            # errcode 0 says it was taken; only the id is missing.
            raise RetryableSendError(
                "wecom answered without a msgid", code="wecom_no_msgid", outcome_unknown=True
            )
        return accepted(self.name, message, provider_id)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is injected."""


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        raise RetryableSendError("wecom answered with no JSON", code="wecom_bad_answer") from None
    if not isinstance(body, dict):
        raise RetryableSendError("wecom answered with no JSON object", code="wecom_bad_answer")
    return body
