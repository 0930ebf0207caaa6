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
as its idempotency key where the provider has one.

Delivery guarantee: each connector declares ``delivery`` (:data:`DeliveryGuarantee`), what its
provider does with that key, and the send activity keeps the promise through retries and crashes:

- ``"idempotent"``: the provider deduplicates on the key (a webhook receiver told to, an API with
  an idempotency header it honours). A retried send simply calls again: at-least-once plus the
  key is once.
- ``"at_most_once"`` (the default when a connector declares nothing): the provider does not
  deduplicate (most SMS, WeCom, push and e-mail APIs; a local file). The engine records the
  attempt durably before calling ``send``; a retry that finds an attempt without an outcome (the
  worker died between the provider's answer and the log) does not call again: the send is logged
  ``unknown``. A ``RetryableSendError`` with ``outcome_unknown=True`` (a read timeout, a
  connection lost after the request went out: the provider may have taken it) is logged
  ``unknown`` at once, not retried; any other ``RetryableSendError`` means the provider did not
  take the message, and the send is retried.

Declare ``idempotent`` only when the provider really drops a second request with the same key:
a wrong declaration sends a person the same message twice.

Nothing in an error message, a receipt or a log line may contain the recipient's address or the
message content (they are personal data); error messages name the provider host and status only.
Log :func:`fingerprint` of an address when a line must identify the recipient.

Optional parts of a connector, read with ``getattr`` by the registry and the cap service:

- ``limits: SendLimits``: how hard the provider may be pushed (tokens per second, burst,
  concurrent requests); the registry wraps ``send`` to honour it.
- ``quota: ProviderQuota``: a limit the provider itself enforces per recipient (WeCom: 4 group
  messages per customer per month), for the cap service to enforce as a policy cap before sending.
- ``delivery: DeliveryGuarantee``: ``"idempotent"`` or ``"at_most_once"`` (above), read with
  :func:`delivery_guarantee`; every built-in connector declares it.

Settings: subclass :class:`ProviderSettings` with your own ``env_prefix`` and build it with
:meth:`ProviderSettings.load`; :meth:`ProviderSettings.require` names every missing secret.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable

import httpx
import structlog
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "UNSUBSCRIBE_URL",
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "DeliveryGuarantee",
    "DeliveryReceipt",
    "OutboundMessage",
    "PermanentSendError",
    "ProviderQuota",
    "ProviderSettings",
    "RetryableSendError",
    "SendLimits",
    "TokenCache",
    "accepted",
    "classify_transport_error",
    "delivery_guarantee",
    "fingerprint",
    "list_unsubscribe_headers",
    "parse_retry_after",
    "raise_for_response",
    "secret",
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
    options: Mapping[str, str] = field(default_factory=dict)
    """Settings the journey's send step gives its connector, overriding the connector's own
    (``webhook_url``, ``webhook_secret_env``); empty for most steps."""

    def __post_init__(self) -> None:
        if not self.send_key:
            raise ValueError("send_key must not be empty")
        object.__setattr__(self, "content", _frozen(self.content))
        object.__setattr__(self, "metadata", _frozen(self.metadata))
        object.__setattr__(self, "options", _frozen(self.options))


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
    """The send may succeed later; ``retry_after`` (seconds) is the provider's hint, if any.

    ``outcome_unknown``: the request may have reached the provider and been taken (a read
    timeout, a connection lost after sending, a gateway timeout). An idempotent connector's send
    is retried all the same; an at-most-once connector's is logged ``unknown`` instead.
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        code: str | None = None,
        *,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code
        self.outcome_unknown = outcome_unknown


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


# --- optional parts: delivery guarantee, limits, quotas, settings ---------------------------

DeliveryGuarantee = Literal["idempotent", "at_most_once"]
"""What a connector's provider does with the send key (see the module docstring)."""


def delivery_guarantee(connector: object) -> DeliveryGuarantee:
    """A connector's declared ``delivery``; ``"at_most_once"`` when it declares none (or
    something else), the side on which nobody gets a message twice."""
    declared = getattr(connector, "delivery", None)
    return "idempotent" if declared == "idempotent" else "at_most_once"


@dataclass(frozen=True)
class SendLimits:
    """How hard a connector may push its provider; the registry applies it around ``send``.

    ``rate_per_second`` is a token bucket refilled at that rate holding ``burst`` tokens;
    ``max_concurrency`` bounds requests in flight. ``None`` means no limit of that kind.
    """

    rate_per_second: float | None = None
    burst: int = 1
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.rate_per_second is not None and not self.rate_per_second > 0:
            raise ValueError("rate_per_second must be positive")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")

    @property
    def unlimited(self) -> bool:
        return self.rate_per_second is None and self.max_concurrency is None


@dataclass(frozen=True)
class ProviderQuota:
    """A limit the provider enforces per recipient, which the cap service enforces first, on
    top of the contact policy (a policy rule for the same channel never replaces it).

    ``window`` is a calendar period (a week starts on Monday) in ``timezone``, the provider's
    own, or in the recipient's when ``timezone`` is None; ``scope`` says who is counted: one
    recipient across every sender of the brand.
    """

    max: int
    window: Literal["day", "week", "month"]
    kind: str
    """What is counted, e.g. ``"group_message"``."""
    scope: Literal["recipient"] = "recipient"
    description: str = ""
    timezone: str | None = None
    """Where the provider's periods start (an IANA name); None: the recipient's timezone."""


def accepted(connector: str, message: OutboundMessage, provider_message_id: str) -> DeliveryReceipt:
    """The receipt of a message the provider took, logged once as ``message_sent`` (with a
    fingerprint of the address, never the address)."""
    structlog.get_logger(connector).info(
        "message_sent",
        connector=connector,
        channel=message.channel,
        send_key=message.send_key,
        recipient=fingerprint(message.to),
        provider_message_id=provider_message_id,
    )
    return DeliveryReceipt(provider_message_id=provider_message_id, accepted_at=datetime.now(UTC))


def fingerprint(value: str) -> str:
    """A short stable digest of personal data (an address, a token) for logs and errors.

    The same value gives the same fingerprint, so log lines can be correlated without the value.
    """
    return "fp:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


class ProviderSettings(BaseSettings):
    """Base of a connector's settings: its own ``env_prefix`` plus the common limits.

    Subclass with ``model_config = SettingsConfigDict(env_prefix="JOURNEY_ACME_", extra="ignore")``.
    """

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    rate_per_second: float | None = Field(
        None, gt=0, description="requests per second to the provider (token bucket)"
    )
    burst: int = Field(1, ge=1, description="requests that may go at once before the rate applies")
    concurrency: int | None = Field(None, ge=1, description="requests in flight at most")
    timeout: float = Field(10.0, gt=0, description="seconds per provider request")

    default_rate_per_second: ClassVar[float | None] = None
    """The provider's documented throttle, used when ``rate_per_second`` is not set."""
    default_concurrency: ClassVar[int | None] = None

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable that sets ``field_name``."""
        prefix = str(cls.model_config.get("env_prefix", ""))
        return (prefix + field_name).upper()

    @classmethod
    def load(cls, **values: Any) -> Self:
        """Settings from the environment (``values`` win); a bad value is a ConnectorConfigError
        naming its environment variable."""
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else ""
            env = cls.env_name(name) if name else None
            raise ConnectorConfigError(
                f"{env or cls.__name__}: {first['msg']}", env_var=env
            ) from exc

    def require(self, *names: str) -> None:
        """Raise ConnectorConfigError naming the environment variable of every empty setting."""
        missing = []
        for name in names:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is None or value == "":
                missing.append(self.env_name(name))
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ConnectorConfigError(
                f"{' and '.join(missing)} {verb} not set", env_var=missing[0]
            )

    def limits(self) -> SendLimits:
        rate = self.rate_per_second or self.default_rate_per_second
        return SendLimits(
            rate_per_second=rate,
            burst=self.burst,
            max_concurrency=self.concurrency or self.default_concurrency,
        )


def secret(value: SecretStr | None) -> str:
    """The plain value of an optional secret setting ('' when unset)."""
    return value.get_secret_value() if value is not None else ""


# --- helpers shared by several providers ---------------------------------------------------

UNSUBSCRIBE_URL = "unsubscribe_url"
"""Metadata key of the signed one-click unsubscribe link (absolute URL) of a marketing send."""


def list_unsubscribe_headers(message: OutboundMessage) -> dict[str, str]:
    """RFC 2369 / RFC 8058 one-click headers for the message's unsubscribe link (none without one).

    Mailbox providers POST ``List-Unsubscribe=One-Click`` to the link; the API serves it.
    """
    url = message.metadata.get(UNSUBSCRIBE_URL)
    if not url or not url.startswith(("https://", "http://")):
        return {}
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


class TokenCache:
    """An access token fetched on demand and kept until shortly before it expires.

    ``fetch`` returns ``(token, expires_in_seconds)``. Concurrent callers share one fetch. After
    a provider says a token expired, :meth:`invalidate` it (only the token that failed: another
    task may already have refreshed it) and ask again; refresh once per send, not in a loop.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many tokens were fetched (for tests and metrics)."""

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        return None

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()
            if token is not None:
                return token
            token, expires_in = await self._fetch()
            self.fetches += 1
            # Refresh early: a token that expires in flight costs a failed request.
            margin = min(300.0, max(0.0, expires_in) / 10)
            self._token, self._expires_at = token, self._clock() + max(0.0, expires_in) - margin
            return token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None


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


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object; None when it is empty, not JSON or not an object."""
    try:
        body: Any = response.json()
    except (ValueError, httpx.ResponseNotRead):  # JSON and Unicode decoding errors included
        return None
    return body if isinstance(body, dict) else None


def json_id(response: httpx.Response, key: str = "id") -> str | None:
    """A provider's message id from a JSON body's ``key`` (a non-empty string or a number)."""
    value = (json_object(response) or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None


def _provider_code(response: httpx.Response) -> str | None:
    """The provider's own error code from a JSON body, if it gives one in a common shape."""
    body = json_object(response)
    if body is None:
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
    status is permanent. 502 and 504 come from a gateway that could not get the provider's own
    answer, so the provider may have taken the message: ``outcome_unknown``. ``code`` is the
    provider's error code from a JSON body (``code``, ``error.code``, ``error_code``, ``errcode``
    or a string ``error``), else ``"http_<status>"``.
    The body must have been read (it is, for ``client.post``/``get`` without streaming).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    code = _provider_code(response) or f"http_{status}"
    message = f"{_host(response)} answered HTTP {status} ({code})"
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RetryableSendError(
            message, retry_after=retry_after, code=code, outcome_unknown=status in (502, 504)
        )
    raise PermanentSendError(message, code=code)


def classify_transport_error(exc: httpx.HTTPError) -> ConnectorError:
    """The connector error for an httpx exception; raise it ``from exc``.

    Timeouts and network failures are retryable; those after the request may have gone out (a
    read or write timeout, a connection lost mid-exchange) are ``outcome_unknown``, those before
    it (connecting, waiting for a pooled connection) are not. A request httpx refuses to build or
    send (bad URL scheme, invalid header, undecodable body, redirect loop) is permanent, since the
    same request fails the same way.
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
    # Before the request left: nothing reached the provider.
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if isinstance(exc, httpx.TimeoutException):
        return RetryableSendError(
            f"{kind} talking to {host}", code="timeout", outcome_unknown=not unsent
        )
    if isinstance(
        exc,
        httpx.UnsupportedProtocol
        | httpx.LocalProtocolError
        | httpx.DecodingError
        | httpx.TooManyRedirects,
    ):
        return PermanentSendError(f"{kind} talking to {host}", code="request_error")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return RetryableSendError(
            f"{kind} talking to {host}",
            code="connection_error",
            outcome_unknown=not (unsent or isinstance(exc, httpx.ProxyError)),
        )
    # Any other transport failure: retry, the activity's retry policy bounds the attempts.
    return RetryableSendError(
        f"{kind} talking to {host}", code="transport_error", outcome_unknown=True
    )
