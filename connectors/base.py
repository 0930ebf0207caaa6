"""The connector contract: everything a connector author needs, in one module.

A connector turns one rendered :class:`OutboundMessage` into one provider call and returns a
:class:`DeliveryReceipt`. It knows nothing of journeys, the store or frequency caps; it gets an
injected ``httpx.AsyncClient`` (or its own client library) and its settings from the environment.
Connectors import only this module (plus httpx / their client library and structlog).

Error tree (the only exceptions a connector's ``send`` may raise)::

    ConnectorError
    ├── RetryableSendError    try again later: timeouts, connection errors, 408, 429 (honouring
    │                         Retry-After), 5xx. ``retry_after`` is the provider's hint in seconds.
    ├── PermanentSendError    retrying cannot help: other 4xx, an invalid address, a rejected
    │                         template. ``code`` is the provider's error code when it gives one.
    └── ConnectorConfigError  the worker is misconfigured (a missing or invalid setting, an unknown
                              channel); ``env_var`` names the setting to fix. Raised when the
                              registry builds a connector, never by a send that reached a provider.

Every ``send`` carries a ``send_key`` made by the workflow; a connector passes it to the provider
as its idempotency key where the provider has one, so a retried activity never sends twice.

Nothing in an error message, a receipt or a log line may contain the recipient's address or the
message content (they are personal data); error messages name the provider host and status only.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import httpx

__all__ = [
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "DeliveryReceipt",
    "OutboundMessage",
    "PermanentSendError",
    "RetryableSendError",
    "classify_transport_error",
    "parse_retry_after",
    "raise_for_response",
]

_MAX_CODE_LENGTH = 64


# --- messages and receipts ------------------------------------------------------------------


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message for one recipient on one channel.

    ``to`` and ``content`` are personal data: they are left out of ``repr`` so an accidental log
    of the message does not leak them. The mappings are copied and made read-only.
    """

    send_key: str
    """Idempotency key made by the workflow; the same key means the same send."""
    channel: str
    """Channel name used in the journey (``email``, ``sms``, ``wecom``...)."""
    to: str = field(repr=False)
    """Channel address: email, phone number, external user id, profile id..."""
    content: Mapping[str, str] = field(repr=False)
    """Rendered fields, e.g. ``text``, ``subject``, ``html``, ``title``, ``body``."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Context for the provider and for logs: ``journey_id``, ``step_id``, ``profile_id``..."""

    def __post_init__(self) -> None:
        if not self.send_key:
            raise ValueError("send_key must not be empty")
        object.__setattr__(self, "content", _frozen(self.content))
        object.__setattr__(self, "metadata", _frozen(self.metadata))


@dataclass(frozen=True)
class DeliveryReceipt:
    """The provider accepted the message (which is not the same as delivered to a person)."""

    provider_message_id: str
    accepted_at: datetime
    """Timezone-aware, normalised to UTC."""

    def __post_init__(self) -> None:
        if self.accepted_at.tzinfo is None:
            raise ValueError("accepted_at must be timezone-aware")
        object.__setattr__(self, "accepted_at", self.accepted_at.astimezone(UTC))


# --- errors ---------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class RetryableSendError(ConnectorError):
    """The send may succeed later; ``retry_after`` (seconds) is the provider's hint, if any."""

    def __init__(
        self, message: str, retry_after: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class PermanentSendError(ConnectorError):
    """Retrying this send cannot succeed; ``code`` is the provider's error code, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ConnectorConfigError(ConnectorError):
    """A connector's settings are missing or invalid; ``env_var`` names what to set."""

    def __init__(self, message: str, env_var: str | None = None) -> None:
        super().__init__(message)
        self.env_var = env_var


# --- the interface --------------------------------------------------------------------------


@runtime_checkable
class Connector(Protocol):
    """A channel connector.

    Construction must not do I/O or acquire resources (the registry may build a connector only to
    learn whether it is configured); acquire them on first ``send`` and release them in ``aclose``.
    ``send`` must be safe to call concurrently from many tasks.
    """

    name: str
    """The connector type, e.g. ``"console"`` or ``"webhook"`` (not the journey's channel)."""

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """Hand the message to the provider; raise only :class:`ConnectorError` subclasses."""
        ...

    async def aclose(self) -> None:
        """Release what the connector opened (not the injected HTTP client: it is not theirs)."""
        ...


# --- one mapping of HTTP outcomes to the error tree -----------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date).

    Returns ``None`` when the header is absent or unreadable; never a negative number.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _provider_code(response: httpx.Response) -> str | None:
    """The provider's own error code from a JSON body, if it gives one in a common shape."""
    try:
        body: Any = response.json()
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return None
    if not isinstance(body, dict):
        return None
    candidates = [body.get("code"), body.get("error_code"), body.get("errcode")]
    error = body.get("error")
    if isinstance(error, dict):
        candidates.insert(0, error.get("code"))
    elif isinstance(error, str):
        candidates.append(error)
    for candidate in candidates:
        if isinstance(candidate, bool):
            continue
        if isinstance(candidate, str | int) and str(candidate):
            return str(candidate)[:_MAX_CODE_LENGTH]
    return None


def _host(response: httpx.Response) -> str:
    try:
        return response.request.url.host or "provider"
    except RuntimeError:  # a Response built without a request
        return "provider"


def raise_for_response(response: httpx.Response) -> None:
    """Raise the error a provider's HTTP response means; return quietly on 2xx.

    408, 429 and 5xx are retryable (``retry_after`` from ``Retry-After``); every other non-2xx
    status is permanent. ``code`` is the provider's error code from a JSON body (``code``,
    ``error.code``, ``error_code``, ``errcode`` or a string ``error``), else ``"http_<status>"``.
    The body must have been read (it is, for ``client.post``/``get`` without streaming).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    code = _provider_code(response) or f"http_{status}"
    message = f"{_host(response)} answered HTTP {status} ({code})"
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RetryableSendError(message, retry_after=retry_after, code=code)
    raise PermanentSendError(message, code=code)


def classify_transport_error(exc: httpx.HTTPError) -> ConnectorError:
    """The connector error for an httpx exception; raise it ``from exc``.

    Timeouts and network failures are retryable (the idempotency key makes a resend after a
    timeout safe); a request httpx refuses to build or send (bad URL scheme, invalid header,
    undecodable body, redirect loop) is permanent, since the same request fails the same way.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            raise_for_response(exc.response)
        except ConnectorError as mapped:
            return mapped
        return PermanentSendError("unexpected HTTPStatusError for a 2xx response")
    kind = type(exc).__name__
    try:
        host = exc.request.url.host or "provider"
    except RuntimeError:  # raised by httpx when the error has no request
        host = "provider"
    if isinstance(exc, httpx.TimeoutException):
        return RetryableSendError(f"{kind} talking to {host}", code="timeout")
    if isinstance(
        exc,
        httpx.UnsupportedProtocol
        | httpx.LocalProtocolError
        | httpx.DecodingError
        | httpx.TooManyRedirects,
    ):
        return PermanentSendError(f"{kind} talking to {host}", code="request_error")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return RetryableSendError(f"{kind} talking to {host}", code="connection_error")
    # Any other transport failure: retry, the activity's retry policy bounds the attempts.
    return RetryableSendError(f"{kind} talking to {host}", code="transport_error")
