"""The shared contract: messages, receipts and one HTTP-outcome -> error mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from connectors import console, email_http, email_smtp, push, sms, webhook, wecom
from connectors.base import (
    ConnectorError,
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    RetryableSendError,
    classify_transport_error,
    delivery_guarantee,
    parse_retry_after,
    raise_for_response,
)

REQUEST = httpx.Request("POST", "https://api.provider.example/v1/send?token=s3cret")


def response(
    status: int, headers: dict[str, str] | None = None, **kwargs: object
) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=REQUEST, **kwargs)  # type: ignore[arg-type]


def message(**overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "send_key": "k1",
        "channel": "sms",
        "to": "+8613800138000",
        "content": {"text": "你好"},
        "metadata": {"journey_id": "cart"},
    }
    fields.update(overrides)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def test_message_is_immutable_and_its_repr_hides_personal_data() -> None:
    content = {"text": "secret offer"}
    msg = message(content=content)
    content["text"] = "changed"
    assert msg.content["text"] == "secret offer"
    with pytest.raises(TypeError):
        msg.content["text"] = "x"  # type: ignore[index]
    assert "+8613800138000" not in repr(msg)
    assert "secret offer" not in repr(msg)
    assert "k1" in repr(msg)


def test_message_needs_a_send_key() -> None:
    with pytest.raises(ValueError, match="send_key"):
        message(send_key="")


def test_receipt_is_normalised_to_utc_and_rejects_naive_times() -> None:
    shanghai = timezone(timedelta(hours=8))
    receipt = DeliveryReceipt("p1", datetime(2026, 11, 25, 18, 0, tzinfo=shanghai))
    assert receipt.accepted_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert receipt.accepted_at.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone"):
        DeliveryReceipt("p1", datetime(2026, 11, 25, 10, 0))


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_success_statuses_do_not_raise(status: int) -> None:
    raise_for_response(response(status))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status: int) -> None:
    with pytest.raises(RetryableSendError) as info:
        raise_for_response(response(status))
    assert info.value.code == f"http_{status}"
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 409, 410, 413, 422])
def test_other_statuses_are_permanent(status: int) -> None:
    with pytest.raises(PermanentSendError) as info:
        raise_for_response(response(status))
    assert info.value.code == f"http_{status}"


def test_error_messages_name_the_host_but_not_the_url_query() -> None:
    with pytest.raises(PermanentSendError) as info:
        raise_for_response(response(400))
    assert "api.provider.example" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"code": "invalid_address"}, "invalid_address"),
        ({"error": {"code": "blocked", "message": "no"}}, "blocked"),
        ({"error": "unsubscribed"}, "unsubscribed"),
        ({"errcode": 40003, "errmsg": "invalid openid"}, "40003"),  # WeCom / WeChat shape
        ({"error_code": 21211}, "21211"),
        ({"code": True}, "http_400"),
        (["not", "a", "dict"], "http_400"),
    ],
)
def test_provider_error_code_is_taken_from_the_json_body(body: object, code: str) -> None:
    with pytest.raises(PermanentSendError) as info:
        raise_for_response(response(400, json=body))
    assert info.value.code == code


def test_non_json_error_body_falls_back_to_the_status_code() -> None:
    with pytest.raises(RetryableSendError) as info:
        raise_for_response(response(503, content=b"<html>bad gateway</html>"))
    assert info.value.code == "http_503"


def test_429_honours_retry_after_seconds() -> None:
    with pytest.raises(RetryableSendError) as info:
        raise_for_response(response(429, {"Retry-After": "7"}))
    assert info.value.retry_after == 7


def test_503_honours_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    with pytest.raises(RetryableSendError) as info:
        raise_for_response(response(503, {"Retry-After": header}))
    assert info.value.retry_after is not None
    assert 100 < info.value.retry_after <= 120


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 25 Nov 2026 10:00:30 GMT", 30.0),
        ("Wed, 25 Nov 2026 09:00:00 GMT", 0.0),  # in the past: retry now
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (httpx.ConnectTimeout("t", request=REQUEST), RetryableSendError, "timeout"),
        (httpx.ReadTimeout("t", request=REQUEST), RetryableSendError, "timeout"),
        (httpx.PoolTimeout("t", request=REQUEST), RetryableSendError, "timeout"),
        (httpx.ConnectError("refused", request=REQUEST), RetryableSendError, "connection_error"),
        (httpx.ReadError("reset", request=REQUEST), RetryableSendError, "connection_error"),
        (httpx.RemoteProtocolError("eof", request=REQUEST), RetryableSendError, "connection_error"),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), PermanentSendError, "request_error"),
        (httpx.LocalProtocolError("hdr", request=REQUEST), PermanentSendError, "request_error"),
        (httpx.TooManyRedirects("loop", request=REQUEST), PermanentSendError, "request_error"),
    ],
)
def test_transport_errors_are_classified(
    exc: httpx.HTTPError, kind: type[ConnectorError], code: str
) -> None:
    mapped = classify_transport_error(exc)
    assert type(mapped) is kind
    assert getattr(mapped, "code", None) == code
    assert "api.provider.example" in str(mapped)
    assert "s3cret" not in str(mapped)


def test_status_errors_from_raise_for_status_use_the_same_mapping() -> None:
    resp = response(429, {"Retry-After": "7"})
    with pytest.raises(httpx.HTTPStatusError) as info:
        resp.raise_for_status()
    mapped = classify_transport_error(info.value)
    assert isinstance(mapped, RetryableSendError)
    assert mapped.retry_after == 7


def test_transport_error_without_a_request_is_still_classified() -> None:
    mapped = classify_transport_error(httpx.ConnectError("refused"))
    assert isinstance(mapped, RetryableSendError)


@pytest.mark.parametrize(
    ("exc", "unknown"),
    [
        (httpx.ConnectTimeout("t", request=REQUEST), False),
        (httpx.PoolTimeout("t", request=REQUEST), False),
        (httpx.ConnectError("refused", request=REQUEST), False),
        (httpx.ReadTimeout("t", request=REQUEST), True),
        (httpx.WriteTimeout("t", request=REQUEST), True),
        (httpx.ReadError("reset", request=REQUEST), True),
        (httpx.RemoteProtocolError("eof", request=REQUEST), True),
    ],
)
def test_a_failure_after_the_request_left_may_have_been_taken(
    exc: httpx.HTTPError, unknown: bool
) -> None:
    mapped = classify_transport_error(exc)
    assert isinstance(mapped, RetryableSendError)
    assert mapped.outcome_unknown is unknown


@pytest.mark.parametrize(
    ("status", "unknown"), [(429, False), (500, False), (503, False), (502, True), (504, True)]
)
def test_a_gateway_failure_may_hide_a_taken_message(status: int, unknown: bool) -> None:
    with pytest.raises(RetryableSendError) as info:
        raise_for_response(response(status))
    assert info.value.outcome_unknown is unknown


def test_each_built_in_connector_declares_its_delivery_guarantee() -> None:
    declared = {
        module.__name__.rsplit(".", 1)[1]: delivery_guarantee(connector)
        for module, connector in [
            (console, console.ConsoleConnector),
            (email_http, email_http.EmailHttpConnector),
            (email_smtp, email_smtp.SmtpConnector),
            (push, push.PushConnector),
            (sms, sms.SmsConnector),
            (webhook, webhook.WebhookConnector),
            (wecom, wecom.WeComConnector),
        ]
    }
    # Only webhook receivers are told to drop a repeated Idempotency-Key.
    assert declared == {
        "console": "at_most_once",
        "email_http": "at_most_once",
        "email_smtp": "at_most_once",
        "push": "at_most_once",
        "sms": "at_most_once",
        "webhook": "idempotent",
        "wecom": "at_most_once",
    }
    assert delivery_guarantee(object()) == "at_most_once"  # undeclared: the safe side
