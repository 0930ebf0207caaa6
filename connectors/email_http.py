"""The ``email_http`` connector: an HTTP email API in the SendGrid v3 style.

``POST {base_url}/v3/mail/send`` with ``Authorization: Bearer <api key>`` and a JSON body::

    {"personalizations": [{"to": [{"email": ...}]}], "from": {"email": ..., "name": ...},
     "subject": ..., "content": [{"type": "text/plain", ...}, {"type": "text/html", ...}],
     "headers": {"List-Unsubscribe": ..., "List-Unsubscribe-Post": ...},
     "custom_args": {"send_key": ..., "journey_id": ..., "step_id": ...}}

The send key goes as ``Idempotency-Key`` (APIs that support it drop a resend; SendGrid does not,
so the connector declares ``at_most_once``) and in ``custom_args`` (so event webhooks come back
with it). A 2xx answer's ``X-Message-Id`` header
(or a JSON ``id``) is the receipt's provider id. Errors are mapped by
:func:`connectors.base.raise_for_response` (429 with Retry-After and 5xx retry, other 4xx fail).

Content fields: ``subject`` and ``text`` and/or ``html``.

Settings (``JOURNEY_EMAIL_HTTP_*``): ``API_KEY`` and ``FROM_ADDRESS`` (required), ``FROM_NAME``,
``BASE_URL`` (``https://api.sendgrid.com``), and the common limits.
"""

from __future__ import annotations

import hashlib
from email.utils import parseaddr
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
    ProviderSettings,
    SendLimits,
    accepted,
    classify_transport_error,
    json_id,
    list_unsubscribe_headers,
    raise_for_response,
    secret,
)

log = structlog.get_logger(__name__)


class EmailHttpSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_EMAIL_HTTP_", extra="ignore")

    base_url: str = "https://api.sendgrid.com"
    api_key: SecretStr | None = None
    from_address: str | None = None
    from_name: str | None = None

    default_rate_per_second = 100.0


class EmailHttpConnector:
    name = "email_http"
    # SendGrid ignores Idempotency-Key: a resend is a second e-mail.
    delivery: ClassVar[DeliveryGuarantee] = "at_most_once"

    def __init__(self, settings: EmailHttpSettings, client: httpx.AsyncClient) -> None:
        settings.require("api_key", "from_address")
        if "@" not in parseaddr(settings.from_address or "")[1]:
            raise ConnectorConfigError(
                "JOURNEY_EMAIL_HTTP_FROM_ADDRESS is not an email address",
                env_var="JOURNEY_EMAIL_HTTP_FROM_ADDRESS",
            )
        try:
            self._url = httpx.URL(settings.base_url.rstrip("/") + "/v3/mail/send")
        except httpx.InvalidURL as exc:
            raise ConnectorConfigError(
                f"JOURNEY_EMAIL_HTTP_BASE_URL: {exc}", env_var="JOURNEY_EMAIL_HTTP_BASE_URL"
            ) from exc
        self._settings = settings
        self._client = client
        self._auth = f"Bearer {secret(settings.api_key)}"
        self.limits: SendLimits = settings.limits()

    @classmethod
    def from_env(cls, client: httpx.AsyncClient) -> EmailHttpConnector:
        return cls(EmailHttpSettings.load(), client)

    def body(self, message: OutboundMessage) -> dict[str, Any]:
        address = message.to.strip()
        if "@" not in parseaddr(address)[1] or parseaddr(address)[1] != address:
            raise PermanentSendError("recipient is not an email address", code="invalid_address")
        subject = message.content.get("subject")
        text, html = message.content.get("text"), message.content.get("html")
        if not subject or not (text or html):
            raise PermanentSendError("email needs a subject and text or html", code="content")
        content = []
        if text:
            content.append({"type": "text/plain", "value": text})
        if html:
            content.append({"type": "text/html", "value": html})
        sender: dict[str, str] = {"email": parseaddr(self._settings.from_address or "")[1]}
        if self._settings.from_name:
            sender["name"] = self._settings.from_name
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": address}]}],
            "from": sender,
            "subject": subject,
            "content": content,
            "custom_args": {
                "send_key": message.send_key,
                **{k: v for k, v in message.metadata.items() if k in ("journey_id", "step_id")},
            },
        }
        headers = list_unsubscribe_headers(message)
        if headers:
            body["headers"] = headers
        return body

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        body = self.body(message)
        try:
            response = await self._client.post(
                self._url,
                json=body,
                headers={"Authorization": self._auth, "Idempotency-Key": message.send_key},
                timeout=self._settings.timeout,
            )
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc) from None
        raise_for_response(response)
        provider_id = response.headers.get("X-Message-Id") or json_id(response)
        provider_id = (
            provider_id
            or "email-http-" + hashlib.sha256(message.send_key.encode()).hexdigest()[:24]
        )
        return accepted(self.name, message, provider_id)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is injected."""
