"""The ``push`` connector: mobile push through an FCM-style HTTP v1 API.

``POST {base_url}/v1/projects/{project_id}/messages:send`` with ``Authorization: Bearer <token>``
and ``{"message": {"token": <device token>, "notification": {"title", "body"}, "data": {...}}}``;
a 200 answer's ``name`` (``projects/p/messages/<id>``) is the provider id.

Errors carry ``error.status`` and, in ``error.details``, an FCM ``errorCode``: ``UNREGISTERED``
(the app was uninstalled) and ``INVALID_ARGUMENT`` are permanent; ``QUOTA_EXCEEDED`` (429, with
Retry-After), ``UNAVAILABLE`` and ``INTERNAL`` retry. ``UNAUTHENTICATED`` (401) refreshes the
access token once. The code in a failure is the ``errorCode`` (else the status).

The access token is either fixed (``JOURNEY_PUSH_ACCESS_TOKEN``) or fetched from a token
endpoint answering ``{"access_token", "expires_in"}`` (``JOURNEY_PUSH_TOKEN_URL``, e.g. the GCE
metadata server's service-account token URL, queried with ``Metadata-Flavor: Google``) and cached
until shortly before expiry.

Content fields: ``title``, ``body`` (required), ``image``, and ``data.<key>`` for the app. The send
key travels as ``data.send_key`` (FCM has no idempotency key; the app can drop a duplicate) and
as the collapse key, so a resend replaces rather than stacks a notification.

Settings (``JOURNEY_PUSH_*``): ``PROJECT_ID``, ``ACCESS_TOKEN`` or ``TOKEN_URL``, ``BASE_URL``
(``https://fcm.googleapis.com``), and the common limits.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import httpx
import structlog
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from connectors.base import (
    ConnectorConfigError,
    ConnectorError,
    DeliveryGuarantee,
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    ProviderSettings,
    RetryableSendError,
    SendLimits,
    TokenCache,
    accepted,
    classify_transport_error,
    json_object,
    raise_for_response,
    secret,
)

log = structlog.get_logger(__name__)

RETRYABLE_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})


class PushSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_PUSH_", extra="ignore")

    base_url: str = "https://fcm.googleapis.com"
    project_id: str | None = None
    access_token: SecretStr | None = None
    token_url: str | None = None

    default_rate_per_second = 500.0


class PushConnector:
    name = "push"
    # FCM has no idempotency key: a resend is a second notification.
    delivery: ClassVar[DeliveryGuarantee] = "at_most_once"

    def __init__(self, settings: PushSettings, client: httpx.AsyncClient) -> None:
        settings.require("project_id")
        if not secret(settings.access_token) and not settings.token_url:
            raise ConnectorConfigError(
                "JOURNEY_PUSH_ACCESS_TOKEN or JOURNEY_PUSH_TOKEN_URL is not set",
                env_var="JOURNEY_PUSH_ACCESS_TOKEN",
            )
        try:
            base = httpx.URL(settings.base_url.rstrip("/"))
            self._url = base.join(f"/v1/projects/{settings.project_id}/messages:send")
            self._token_url = httpx.URL(settings.token_url) if settings.token_url else None
        except httpx.InvalidURL as exc:
            raise ConnectorConfigError(
                f"JOURNEY_PUSH_BASE_URL or TOKEN_URL: {exc}", env_var="JOURNEY_PUSH_BASE_URL"
            ) from exc
        self._settings = settings
        self._client = client
        self.tokens = TokenCache(self._fetch_token)
        self.limits: SendLimits = settings.limits()

    @classmethod
    def from_env(cls, client: httpx.AsyncClient) -> PushConnector:
        return cls(PushSettings.load(), client)

    async def _fetch_token(self) -> tuple[str, float]:
        fixed = secret(self._settings.access_token)
        if fixed or self._token_url is None:
            return fixed, 365 * 86400.0
        try:
            response = await self._client.get(
                self._token_url,
                headers={"Metadata-Flavor": "Google"},
                timeout=self._settings.timeout,
            )
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc) from None
        if response.status_code != 200:
            log.error("provider_misconfigured", connector=self.name, code="token_endpoint")
            raise RetryableSendError("push token endpoint refused", code="token_endpoint")
        body: Any = response.json()
        return str(body["access_token"]), float(body.get("expires_in", 3600))

    def body(self, message: OutboundMessage) -> dict[str, Any]:
        content = message.content
        if not content.get("body"):
            raise PermanentSendError("push needs a body", code="content")
        notification = {"title": content.get("title", ""), "body": content["body"]}
        if content.get("image"):
            notification["image"] = content["image"]
        data = {k.split(".", 1)[1]: v for k, v in content.items() if k.startswith("data.")}
        data["send_key"] = message.send_key
        collapse = hashlib.sha256(message.send_key.encode()).hexdigest()[:32]
        return {
            "message": {
                "token": message.to,
                "notification": notification,
                "data": data,
                "android": {"collapse_key": collapse},
                "apns": {"headers": {"apns-collapse-id": collapse}},
            }
        }

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if not message.to.strip():
            raise PermanentSendError("no device token", code="invalid_address")
        body = self.body(message)
        refreshed = False
        while True:
            token = await self.tokens.get()
            try:
                response = await self._client.post(
                    self._url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._settings.timeout,
                )
            except httpx.HTTPError as exc:
                raise classify_transport_error(exc) from None
            if response.status_code == 401 and not refreshed and self._token_url is not None:
                self.tokens.invalidate(token)
                refreshed = True
                continue
            break
        if response.status_code != 200:
            raise _classify(response)
        answer: Any = response.json()
        provider_id = str(answer.get("name") or "")
        return accepted(self.name, message, provider_id)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is injected."""


def fcm_error_code(response: httpx.Response) -> str | None:
    """The FCM ``errorCode`` from ``error.details`` (else ``error.status``)."""
    error = (json_object(response) or {}).get("error")
    if not isinstance(error, dict):
        return None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    status = error.get("status")
    return status if isinstance(status, str) else None


def _classify(response: httpx.Response) -> ConnectorError:
    code = fcm_error_code(response)
    try:
        raise_for_response(response)
    except RetryableSendError as exc:
        return RetryableSendError(
            str(exc),
            retry_after=exc.retry_after,
            code=code or exc.code,
            outcome_unknown=exc.outcome_unknown,
        )
    except PermanentSendError as exc:
        if code in RETRYABLE_CODES:
            return RetryableSendError(str(exc), code=code)
        if response.status_code in (401, 403) and code != "SENDER_ID_MISMATCH":
            log.error("provider_misconfigured", connector="push", code=code or exc.code)
            return RetryableSendError(str(exc), code=code or exc.code)
        return PermanentSendError(str(exc), code=code or exc.code)
    return PermanentSendError("unexpected answer", code=code or f"http_{response.status_code}")
