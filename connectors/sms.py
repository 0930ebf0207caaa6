"""The ``sms`` connector: an HTTP SMS API in the Aliyun (default) or Twilio style.

**Aliyun style** (``JOURNEY_SMS_PROVIDER=aliyun``): carriers in China only deliver pre-approved
templates, so a message is a template code plus parameters. ``POST {base_url}/`` form-encoded RPC
call ``Action=SendSms`` with ``PhoneNumbers``, ``SignName``, ``TemplateCode``, ``TemplateParam``
(JSON), ``OutId`` (the send key), signed with HMAC-SHA1 over the canonical query (Aliyun's RPC
signature v1). The answer is HTTP 200 with ``{"Code": "OK", "BizId": ...}`` or a business error
``Code``, mapped by :data:`ALIYUN_RETRYABLE` / :data:`ALIYUN_CONFIG` (everything else is permanent).

Content fields: ``template_code`` (else ``JOURNEY_SMS_TEMPLATE_CODE``) and ``params.<name>``
(a template file's ``params:`` mapping becomes these fields).

**Twilio style** (``JOURNEY_SMS_PROVIDER=twilio``): ``POST {base_url}/2010-04-01/Accounts/{sid}/
Messages.json`` form ``To``, ``From``, ``Body`` (the ``text`` field), basic auth; 201 with a
``sid``; errors are HTTP statuses with a numeric ``code`` (21211 invalid number, 20429 throttled).
The send key goes as ``I-Twilio-Idempotency-Token``. Neither API drops a resend, so the
connector declares ``at_most_once``.

Settings (``JOURNEY_SMS_*``): ``PROVIDER``, ``BASE_URL``; Aliyun: ``ACCESS_KEY_ID``,
``ACCESS_KEY_SECRET``, ``SIGN_NAME``; Twilio: ``ACCOUNT_SID``, ``AUTH_TOKEN``, ``FROM_NUMBER``;
and the common limits (defaults: 50 requests/s for Aliyun, 10 for Twilio).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
import structlog
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors.base import (
    ConnectorConfigError,
    DeliveryGuarantee,
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    ProviderSettings,
    RetryableSendError,
    SendLimits,
    classify_transport_error,
    fingerprint,
    json_object,
    parse_retry_after,
    raise_for_response,
    secret,
)

log = structlog.get_logger(__name__)

ALIYUN_RETRYABLE = {
    "isp.SYSTEM_ERROR": None,
    "Throttling.User": 1.0,
    "Throttling.Api": 1.0,
    "isv.BUSINESS_LIMIT_CONTROL": 60.0,  # per-number flow control: 1 a minute, 5 an hour...
    "ServiceUnavailable": None,
}
"""Aliyun business codes worth retrying, with the delay to wait (seconds, or the backoff)."""

ALIYUN_CONFIG = {
    "isv.AMOUNT_NOT_ENOUGH",  # the account ran out of credit: the operator tops up
    "isv.ACCOUNT_ABNORMAL",
    "InvalidAccessKeyId.NotFound",
    "SignatureDoesNotMatch",
    "isv.SMS_SIGNATURE_ILLEGAL",
    "Forbidden.RAM",
}
"""Codes meaning the worker is misconfigured: retried (messages wait), never the person's fault."""

_PHONE = re.compile(r"^\+?[0-9]{5,15}$")


class SmsSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_SMS_", extra="ignore")

    provider: Literal["aliyun", "twilio"] = "aliyun"
    base_url: str | None = Field(None, description="API root; the provider's public one if unset")
    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    sign_name: str | None = Field(None, description="Aliyun approved signature, e.g. 鲜果铺")
    template_code: str | None = Field(None, description="Aliyun template when a message names none")
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_number: str | None = None

    def limits(self) -> SendLimits:
        default = 50.0 if self.provider == "aliyun" else 10.0
        return SendLimits(
            rate_per_second=self.rate_per_second or default,
            burst=self.burst,
            max_concurrency=self.concurrency,
        )


class SmsConnector:
    name = "sms"
    # Neither Aliyun (OutId is only echoed back) nor Twilio's Messages API drops a resend.
    delivery: ClassVar[DeliveryGuarantee] = "at_most_once"

    def __init__(self, settings: SmsSettings, client: httpx.AsyncClient) -> None:
        if settings.provider == "aliyun":
            settings.require("access_key_id", "access_key_secret", "sign_name")
            default_base = "https://dysmsapi.aliyuncs.com"
        else:
            settings.require("account_sid", "auth_token", "from_number")
            default_base = "https://api.twilio.com"
        base = (settings.base_url or default_base).rstrip("/")
        try:
            self._base = httpx.URL(base)
        except httpx.InvalidURL as exc:
            raise ConnectorConfigError(
                f"JOURNEY_SMS_BASE_URL: {exc}", env_var="JOURNEY_SMS_BASE_URL"
            ) from exc
        self._settings = settings
        self._client = client
        self.limits: SendLimits = settings.limits()

    @classmethod
    def from_env(cls, client: httpx.AsyncClient) -> SmsConnector:
        return cls(SmsSettings.load(), client)

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        phone = message.to.strip().replace(" ", "").replace("-", "")
        if not _PHONE.match(phone):
            raise PermanentSendError("recipient is not a phone number", code="invalid_address")
        try:
            if self._settings.provider == "aliyun":
                provider_id = await self._send_aliyun(phone, message)
            else:
                provider_id = await self._send_twilio(phone, message)
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc) from None
        log.info(
            "message_sent",
            connector=self.name,
            provider=self._settings.provider,
            channel=message.channel,
            send_key=message.send_key,
            recipient=fingerprint(phone),
            provider_message_id=provider_id,
        )
        return DeliveryReceipt(provider_message_id=provider_id, accepted_at=datetime.now(UTC))

    # -- Aliyun ------------------------------------------------------------------------------

    async def _send_aliyun(self, phone: str, message: OutboundMessage) -> str:
        settings = self._settings
        template_code = message.content.get("template_code") or settings.template_code
        if not template_code:
            raise PermanentSendError("sms needs a template_code", code="content")
        params = template_params(message.content)
        form = {
            "Action": "SendSms",
            "Version": "2017-05-25",
            "Format": "JSON",
            "AccessKeyId": settings.access_key_id or "",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": uuid.uuid4().hex,  # unique per request: a resend is a new request
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "PhoneNumbers": phone.lstrip("+"),
            "SignName": settings.sign_name or "",
            "TemplateCode": template_code,
            "TemplateParam": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
            "OutId": message.send_key,
        }
        form["Signature"] = aliyun_signature(secret(settings.access_key_secret), "POST", form)
        response = await self._client.post(
            self._base.join("/"), data=form, timeout=settings.timeout
        )
        code = _aliyun_code(response)
        if response.status_code == 200 and code == "OK":
            body: Any = response.json()
            return str(body.get("BizId") or body.get("RequestId") or message.send_key)
        if code is None:
            raise_for_response(response)
            raise PermanentSendError("aliyun answered without a Code", code="aliyun_no_code")
        reason = f"aliyun sms answered {response.status_code} ({code})"
        if code in ALIYUN_RETRYABLE:
            hint = parse_retry_after(response.headers.get("Retry-After"))
            raise RetryableSendError(reason, retry_after=hint or ALIYUN_RETRYABLE[code], code=code)
        if code in ALIYUN_CONFIG or response.status_code >= 500:
            log.error("provider_misconfigured", connector=self.name, code=code)
            raise RetryableSendError(reason, code=code)
        raise PermanentSendError(reason, code=code)

    # -- Twilio ------------------------------------------------------------------------------

    async def _send_twilio(self, phone: str, message: OutboundMessage) -> str:
        settings = self._settings
        text = message.content.get("text")
        if not text:
            raise PermanentSendError("sms needs a text", code="content")
        url = self._base.join(f"/2010-04-01/Accounts/{settings.account_sid}/Messages.json")
        response = await self._client.post(
            url,
            data={"To": phone, "From": settings.from_number or "", "Body": text},
            auth=(settings.account_sid or "", secret(settings.auth_token)),
            headers={"I-Twilio-Idempotency-Token": message.send_key},
            timeout=settings.timeout,
        )
        if response.status_code == 401:
            log.error("provider_misconfigured", connector=self.name, code="http_401")
            raise RetryableSendError("twilio refused the credentials", code="http_401")
        raise_for_response(response)
        body: Any = response.json()
        return str(body.get("sid") or message.send_key)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is injected."""


def template_params(content: Mapping[str, str]) -> dict[str, str]:
    """``params.<name>`` content fields as the provider's parameter mapping."""
    return {k.split(".", 1)[1]: v for k, v in content.items() if k.startswith("params.")}


def _percent(value: str) -> str:
    return quote(value, safe="-_.~")


def aliyun_signature(secret_key: str, method: str, params: Mapping[str, str]) -> str:
    """Aliyun RPC signature v1: HMAC-SHA1(secret + "&", METHOD&%2F&percent(canonical query))."""
    canonical = "&".join(
        f"{_percent(k)}={_percent(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    to_sign = f"{method}&{_percent('/')}&{_percent(canonical)}"
    digest = hmac.new(f"{secret_key}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _aliyun_code(response: httpx.Response) -> str | None:
    code = (json_object(response) or {}).get("Code")
    return str(code)[:64] if isinstance(code, str) and code else None
