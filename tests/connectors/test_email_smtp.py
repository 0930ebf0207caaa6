"""email_smtp against a real aiosmtpd server: both parts, one-click unsubscribe that works."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from smtp_server import Mailbox
from temporalio.testing import WorkflowEnvironment

from connectors.base import (
    ConnectorConfigError,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
)
from connectors.email_smtp import SmtpConnector, SmtpSettings, message_id
from engine.api import create_app
from engine.servers import free_port
from engine.unsubscribe import unsubscribe_url
from tests.harness import person, running_worker, sqlite_store

SECRET = "unsubscribe-test-secret"


def email(to: str = "xiaoming@example.com", **metadata: str) -> OutboundMessage:
    return OutboundMessage(
        send_key="cart:p1:nudge:1",
        channel="email",
        to=to,
        content={
            "subject": "小明，购物车即将清空",
            "text": "您加购的商品明天将从购物车移除。",
            "html": "<p>您加购的商品明天将从购物车<b>移除</b>。</p>",
        },
        metadata={"journey_id": "cart", "profile_id": "p1", **metadata},
    )


def connector(port: int, **settings: object) -> SmtpConnector:
    return SmtpConnector(
        SmtpSettings(host="127.0.0.1", port=port, from_address="鲜果铺 <hi@shop.test>", **settings)
    )


async def test_a_message_arrives_with_text_and_html_parts(
    smtp_server: tuple[int, Mailbox], mailbox: Mailbox
) -> None:
    receipt = await connector(smtp_server[0]).send(email())

    (received,) = mailbox.received
    assert received.rcpt_tos == ["xiaoming@example.com"]
    assert received.mail_from == "hi@shop.test"
    message = received.message
    assert message["Subject"] == "小明，购物车即将清空"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and "移除" in text.get_content()
    assert html is not None and "<b>移除</b>" in html.get_content()
    assert message["Message-ID"] == receipt.provider_message_id
    assert receipt.provider_message_id == message_id("cart:p1:nudge:1", "shop.test")
    assert "List-Unsubscribe" not in message  # no link given, no header


async def test_html_only_gets_a_derived_text_part(
    smtp_server: tuple[int, Mailbox], mailbox: Mailbox
) -> None:
    message = OutboundMessage(
        send_key="k2",
        channel="email",
        to="a@example.com",
        content={"subject": "hi", "html": "<p>line one</p><p>5 &gt; 3</p>"},
    )
    await connector(smtp_server[0]).send(message)
    text = mailbox.received[0].message.get_body(("plain",))
    assert text is not None and text.get_content().split() == ["line", "one", "5", ">", "3"]


async def test_one_click_unsubscribe_header_unsubscribes_through_the_api(
    smtp_server: tuple[int, Mailbox],
    mailbox: Mailbox,
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    store = await sqlite_store(tmp_path)
    await store.upsert_profiles([person("p1", email="xiaoming@example.com")])
    link = unsubscribe_url("http://api.test", SECRET, "p1", "email")
    await connector(smtp_server[0]).send(email(unsubscribe_url=link))

    message = mailbox.received[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.fullmatch(r"<(https?://[^>]+)>", str(message["List-Unsubscribe"]))
    assert found is not None
    url = found.group(1)
    assert "xiaoming" not in url  # the link names the profile by a signed token, not the address

    async with running_worker(time_skipping_env, store, tmp_path) as h:
        app = create_app(store, h.router, ["key"], unsubscribe_secret=SECRET)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            # What a mailbox provider does for one-click (RFC 8058): POST the header's body.
            answer = await http.post(url, content=b"List-Unsubscribe=One-Click")
    assert answer.status_code == 200
    assert await store.is_unsubscribed("p1", "email") is True
    assert await store.is_unsubscribed("p1", "sms") is False
    await store.aclose()


async def test_a_refused_recipient_is_permanent_and_a_deferred_one_retryable(
    smtp_server: tuple[int, Mailbox], mailbox: Mailbox
) -> None:
    mailbox.refuse["gone@example.com"] = "550 5.1.1 mailbox unavailable"
    mailbox.refuse["busy@example.com"] = "451 4.3.0 try again later"
    smtp = connector(smtp_server[0])
    with pytest.raises(PermanentSendError) as permanent:
        await smtp.send(email("gone@example.com"))
    assert permanent.value.code == "smtp_550"
    assert "gone@example.com" not in str(permanent.value)
    with pytest.raises(RetryableSendError) as retry:
        await smtp.send(email("busy@example.com"))
    assert retry.value.code == "smtp_451"
    assert mailbox.received == []


async def test_bad_addresses_and_header_injection_are_refused_before_connecting() -> None:
    smtp = connector(free_port())  # nothing listens: a refusal must come before any connection
    with pytest.raises(PermanentSendError, match="not an email") as bad:
        await smtp.send(email("not-an-address"))
    assert bad.value.code == "invalid_address"
    injected = OutboundMessage(
        send_key="k",
        channel="email",
        to="a@example.com",
        content={"subject": "hi\r\nBcc: everyone@example.com", "text": "x"},
    )
    with pytest.raises(PermanentSendError) as header:
        await smtp.send(injected)
    assert header.value.code == "invalid_header"


async def test_a_server_that_is_down_is_retryable() -> None:
    with pytest.raises(RetryableSendError) as info:
        await connector(free_port(), timeout=2).send(email())
    assert info.value.code in ("connection_error", "timeout")


def test_missing_settings_are_named() -> None:
    with pytest.raises(ConnectorConfigError) as info:
        SmtpConnector(SmtpSettings(host=None, from_address=None))
    assert "JOURNEY_SMTP_HOST" in str(info.value)
    assert "JOURNEY_SMTP_FROM_ADDRESS" in str(info.value)
    with pytest.raises(ConnectorConfigError, match="JOURNEY_SMTP_PASSWORD"):
        SmtpConnector(SmtpSettings(host="h", from_address="a@b.test", username="u"))


# --- STARTTLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, Mailbox]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    mailbox = Mailbox()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True
    )
    controller.start()
    yield controller.port, mailbox
    controller.stop()


async def test_starttls_upgrades_and_verifies_the_server(
    starttls_server: tuple[int, Mailbox], certificate: tuple[Path, Path]
) -> None:
    port, mailbox = starttls_server
    await connector(port, starttls=True, ca_file=certificate[0]).send(email())
    assert len(mailbox.received) == 1

    with pytest.raises(RetryableSendError):  # not trusting the certificate: never sends plain
        await connector(port, starttls=True, timeout=5).send(email())
    assert len(mailbox.received) == 1
