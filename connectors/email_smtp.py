"""The ``email_smtp`` connector: one SMTP submission per message (aiosmtplib).

Content fields: ``subject`` (required), ``text`` and/or ``html`` (a message with both is
``multipart/alternative``; with only ``html`` a plain-text part is derived from it).

Headers: ``Message-ID`` derived from the send key (SMTP has no idempotency key; a stable id lets
receiving systems drop a duplicate after a resend), ``List-Unsubscribe`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` when the send carries an unsubscribe link.

Settings (``JOURNEY_SMTP_*``): ``HOST``, ``PORT`` (587), ``FROM_ADDRESS`` (required), ``USERNAME``
and ``PASSWORD`` (both or neither), ``STARTTLS`` (``true``: required, ``false``: never, unset:
when the server offers it), ``USE_TLS`` (implicit TLS, port 465), ``VALIDATE_CERTS``, ``CA_FILE``,
plus the common ``RATE_PER_SECOND`` / ``BURST`` / ``CONCURRENCY`` / ``TIMEOUT``.

Errors: a 4xx reply, a timeout or a dropped connection is retryable (a timeout or a dropped
connection after connecting may follow the server queueing the message: ``outcome_unknown``);
a 5xx reply to the recipient or the data is permanent (code ``smtp_<reply code>``). A 5xx to the
login or the sender is the worker's configuration, not the person's, so it is retryable (the
messages wait for the operator instead of taking every journey's failure path).
"""

from __future__ import annotations

import email.policy
import hashlib
import html as html_lib
import re
import ssl
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import ClassVar

import aiosmtplib
import httpx
import structlog
from pydantic import Field, SecretStr
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
    accepted,
    list_unsubscribe_headers,
    secret,
)

log = structlog.get_logger(__name__)

SEND_KEY_HEADER = "X-Journey-Send-Key"


class SmtpSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_SMTP_", extra="ignore")

    host: str | None = Field(None, description="SMTP server host name")
    port: int = Field(587, gt=0, lt=65536)
    from_address: str | None = Field(None, description='From header, e.g. "鲜果铺 <hi@shop.cn>"')
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool | None = Field(
        None, description="true: require, false: never, unset: if offered"
    )
    use_tls: bool = Field(False, description="implicit TLS (port 465)")
    validate_certs: bool = True
    ca_file: Path | None = Field(None, description="CA bundle to verify the server with")

    default_concurrency = 10  # a submission server limits connections per client


class SmtpConnector:
    """Sends each message over its own SMTP session (submission servers prefer short sessions)."""

    name = "email_smtp"
    # SMTP has no idempotency key: a second submission is a second e-mail.
    delivery: ClassVar[DeliveryGuarantee] = "at_most_once"

    def __init__(self, settings: SmtpSettings) -> None:
        settings.require("host", "from_address")
        if settings.username and not settings.password:
            settings.require("password")
        sender = parseaddr(settings.from_address or "")[1]
        if "@" not in sender:
            raise ConnectorConfigError(
                "JOURNEY_SMTP_FROM_ADDRESS is not an email address",
                env_var="JOURNEY_SMTP_FROM_ADDRESS",
            )
        self._settings = settings
        self._sender = sender
        self._domain = sender.rsplit("@", 1)[1]
        self.limits: SendLimits = settings.limits()

    @classmethod
    def from_env(cls, client: httpx.AsyncClient | None = None) -> SmtpConnector:
        return cls(SmtpSettings.load())

    def build(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message for ``message`` (PermanentSendError when it cannot be built)."""
        address = parseaddr(message.to)[1]
        if not address or "@" not in address or address != message.to.strip():
            raise PermanentSendError("recipient is not an email address", code="invalid_address")
        subject = message.content.get("subject")
        text = message.content.get("text")
        html = message.content.get("html")
        if not subject or not (text or html):
            raise PermanentSendError("email needs a subject and text or html", code="content")
        if text is None and html is not None:
            text = _text_from_html(html)
        mime = EmailMessage(policy=_POLICY)
        try:
            mime["From"] = self._settings.from_address
            mime["To"] = Address(addr_spec=address)
            mime["Subject"] = subject
            mime["Date"] = format_datetime(datetime.now(UTC))
            mime["Message-ID"] = message_id(message.send_key, self._domain)
            mime[SEND_KEY_HEADER] = message.send_key
            for header, value in list_unsubscribe_headers(message).items():
                mime[header] = value
        except (ValueError, TypeError) as exc:  # CR/LF in a header, an unparsable address
            raise PermanentSendError(
                f"invalid header: {type(exc).__name__}", code="invalid_header"
            ) from None
        mime.set_content(text or "", charset="utf-8")
        if html:
            mime.add_alternative(html, subtype="html", charset="utf-8")
        return mime

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        mime = self.build(message)
        settings = self._settings
        tls_context = None
        if settings.ca_file is not None:
            tls_context = ssl.create_default_context(cafile=str(settings.ca_file))
        try:
            await aiosmtplib.send(
                mime.as_bytes(),
                sender=self._sender,
                recipients=[message.to.strip()],
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=secret(settings.password) or None,
                start_tls=settings.starttls,
                use_tls=settings.use_tls,
                validate_certs=settings.validate_certs,
                tls_context=tls_context,
                timeout=settings.timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise _classify(exc) from None  # aiosmtplib's messages may quote the address
        except ssl.SSLError as exc:
            # An untrusted certificate is the server's or the settings' fault: hold, never
            # fall back to plain text.
            log.error("provider_misconfigured", connector=self.name, code="tls_error")
            raise RetryableSendError(
                f"TLS with smtp server failed: {exc.reason}", code="tls_error"
            ) from None
        except OSError as exc:
            raise RetryableSendError(
                f"{type(exc).__name__} talking to smtp server",
                code="connection_error",
                outcome_unknown=not isinstance(exc, ConnectionRefusedError),
            ) from None
        provider_id = str(mime["Message-ID"])
        return accepted(self.name, message, provider_id)

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own session."""


def message_id(send_key: str, domain: str) -> str:
    """A Message-ID stable for a send key, so a resend after a timeout is recognisably the same."""
    return f"<{hashlib.sha256(send_key.encode()).hexdigest()[:32]}@{domain}>"


# Lines up to RFC 5322's hard limit: with the default 78, a long unsubscribe URL (one token, no
# spaces) would be folded into RFC 2047 encoded-words, which no mail client reads as a URL.
# aiosmtplib would flatten with its own 78-column policy, so the message goes as bytes.
_POLICY = email.policy.SMTP.clone(max_line_length=998)

_TAG = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|tr)>|<br\s*/?>", re.IGNORECASE)


def _text_from_html(markup: str) -> str:
    return html_lib.unescape(_TAG.sub("", _BLOCK_END.sub("\n", markup))).strip()


def _classify(exc: aiosmtplib.SMTPException) -> ConnectorError:
    host = "smtp server"
    # Connecting comes first: SMTPConnectTimeoutError is also an SMTPTimeoutError.
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return RetryableSendError(f"cannot connect to {host}", code="connection_error")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPServerDisconnected):
        # Perhaps after the data went: the server may have queued the message.
        return RetryableSendError(
            f"{type(exc).__name__} talking to {host}", code="timeout", outcome_unknown=True
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        code = codes[0] if codes else 550
        if 400 <= code < 500:
            return RetryableSendError(
                f"{host} deferred the recipient ({code})", code=f"smtp_{code}"
            )
        return PermanentSendError(f"{host} refused the recipient ({code})", code=f"smtp_{code}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code
        config = isinstance(
            exc,
            aiosmtplib.SMTPAuthenticationError
            | aiosmtplib.SMTPSenderRefused
            | aiosmtplib.SMTPHeloError,
        )
        if 400 <= code < 500 or config or code < 200:
            return RetryableSendError(f"{host} answered {code}", code=f"smtp_{code}")
        return PermanentSendError(f"{host} answered {code}", code=f"smtp_{code}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # e.g. STARTTLS required but not offered: the server's or the settings' fault
        return RetryableSendError(f"{host}: {type(exc).__name__}", code="smtp_not_supported")
    return RetryableSendError(f"{host}: {type(exc).__name__}", code="smtp_error")
