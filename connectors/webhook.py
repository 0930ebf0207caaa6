"""The webhook connector: a signed JSON POST per message, to a URL the brand controls.

Request body (UTF-8 JSON)::

    {"send_key": ..., "channel": ..., "to": ..., "content": {...}, "metadata": {...}}

Headers, signed per the Standard Webhooks specification (https://www.standardwebhooks.com), so
a receiver verifies with an existing library (``standardwebhooks`` for Python, ``svix``...):

- ``webhook-id: <send_key>``: the same id is the same message, also on a retry; a receiver must
  not act twice on it (the engine resends after a timeout). ``Idempotency-Key`` says the same.
- ``webhook-timestamp: <unix seconds>``
- ``webhook-signature: v1,<base64 HMAC-SHA256(key, "<webhook-id>.<timestamp>.<raw body>")>``.
  The key: a secret in the specification's format, ``whsec_<base64>``, is its base64-decoded
  bytes (``Webhook("whsec_...")`` verifies); any other secret is its UTF-8 bytes (verify with
  ``Webhook(secret.encode())``).
- ``X-Journey-Timestamp`` / ``X-Journey-Signature: sha256=<hex HMAC-SHA256(secret,
  "<timestamp>.<raw body>")>``: the engine's earlier scheme, still sent for receivers built on
  it (:func:`verify_signature`); new receivers should use the standard headers.

A journey's send step may name its own target (``webhook: {url, secret_env}``), which reaches the
connector as the message's ``webhook_url`` / ``webhook_secret_env`` options; ``JOURNEY_WEBHOOK_URL``
and ``JOURNEY_WEBHOOK_SECRET`` are the defaults.

A receiver checks the signature over the raw body bytes with :func:`verify_signature`, which also
rejects timestamps outside a tolerance (replays). A 2xx response whose JSON has an ``id`` gives
the receipt's provider id; any other status is mapped by :func:`connectors.base.raise_for_response`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import ClassVar

import httpx
import structlog

from connectors.base import (
    ConnectorConfigError,
    DeliveryGuarantee,
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    classify_transport_error,
    json_id,
    raise_for_response,
)

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Journey-Signature"
TIMESTAMP_HEADER = "X-Journey-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
STANDARD_SECRET_PREFIX = "whsec_"


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """The ``X-Journey-Signature`` header value for a body sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + _as_bytes(body)
    return "sha256=" + hmac.new(_as_bytes(secret), signed, hashlib.sha256).hexdigest()


def standard_key(secret: str | bytes) -> bytes:
    """The Standard Webhooks signing key of ``secret``: the base64-decoded part of a
    ``whsec_...`` secret, else the secret's UTF-8 bytes. ``ValueError`` for a ``whsec_`` secret
    that is not base64."""
    raw = _as_bytes(secret)
    prefix = STANDARD_SECRET_PREFIX.encode()
    if not raw.startswith(prefix):
        return raw
    try:
        key = base64.b64decode(raw[len(prefix) :], validate=True)
    except binascii.Error:
        raise ValueError("a whsec_ webhook secret must be base64 after the prefix") from None
    if not key:
        raise ValueError("a whsec_ webhook secret must not be empty after the prefix")
    return key


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks, version 1)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_signature(
    secret: str | bytes,
    timestamp: int | str | None,
    body: str | bytes,
    header: str | None,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` sent at ``timestamp``.

    ``body`` must be the raw request body exactly as received. False (never an exception) when
    the header or timestamp is missing or malformed, or the timestamp is more than
    ``tolerance_s`` seconds away from ``now`` (default: the current time). Constant-time compare.
    """
    if not header or timestamp is None:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    expected = sign(secret, sent_at, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8"))


class WebhookConnector:
    """POSTs each message to ``url``, signed with ``secret``; see the module docstring."""

    name = "webhook"
    # Receivers are told to act once per Idempotency-Key (the module docstring).
    delivery: ClassVar[DeliveryGuarantee] = "idempotent"

    def __init__(
        self,
        url: str,
        secret: str,
        client: httpx.AsyncClient,
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ConnectorConfigError(f"webhook url is not a valid URL: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConnectorConfigError("webhook url must be an absolute http(s) URL")
        if not secret:
            raise ConnectorConfigError("webhook secret must not be empty")
        try:
            standard_key(secret)
        except ValueError as exc:
            raise ConnectorConfigError(str(exc)) from None
        self._url = parsed
        self._secret = secret.encode("utf-8")
        self._client = client
        self._timeout = timeout
        self._clock = clock

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        url, secret = self._target(message.options)
        body = json.dumps(
            {
                "send_key": message.send_key,
                "channel": message.channel,
                "to": message.to,
                "content": dict(message.content),
                "metadata": dict(message.metadata),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        timestamp = int(self._clock())
        try:
            key = standard_key(secret)
        except ValueError as exc:  # a step's own secret variable, read at send time
            raise PermanentSendError(str(exc), code="bad_secret") from None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            WEBHOOK_ID_HEADER: message.send_key,
            WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
            WEBHOOK_SIGNATURE_HEADER: standard_signature(key, message.send_key, timestamp, body),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            IDEMPOTENCY_HEADER: message.send_key,
        }
        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise classify_transport_error(exc) from exc
        raise_for_response(response)
        provider_id = json_id(response) or _fallback_id(message.send_key)
        log.info(
            "message_sent",
            connector=self.name,
            channel=message.channel,
            send_key=message.send_key,
            status=response.status_code,
            provider_message_id=provider_id,
        )
        return DeliveryReceipt(provider_message_id=provider_id, accepted_at=datetime.now(UTC))

    def _target(self, options: Mapping[str, str]) -> tuple[httpx.URL, bytes]:
        """This message's URL and secret: the send step's ``webhook`` target, else the defaults.

        The journey language checked the step's URL; a secret variable the worker does not have
        is a permanent failure naming the variable (a retry would not find it either).
        """
        url = httpx.URL(options["webhook_url"]) if "webhook_url" in options else self._url
        env = options.get("webhook_secret_env")
        if env is None:
            return url, self._secret
        secret = os.environ.get(env, "")
        if not secret:
            raise PermanentSendError(
                f"the send step's webhook secret variable {env} is not set on this worker",
                code=f"secret_env_missing:{env}",
            )
        return url, secret.encode("utf-8")

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client is injected and owned by the caller."""


def _fallback_id(send_key: str) -> str:
    return "webhook-" + hashlib.sha256(send_key.encode("utf-8")).hexdigest()[:32]
