"""Connectors behind the real send activity, on the time-skipping Temporal server: retries deliver
exactly once per send key, refusals take on_failure, and no log line carries an address."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from provider_stub import Provider
from providers import (
    ALIYUN_KEY_ID,
    ALIYUN_SECRET,
    API_KEY,
    CORP_ID,
    CORP_SECRET,
    Answer,
    Providers,
)
from temporalio.testing import WorkflowEnvironment

from connectors.registry import ConnectorRegistry, ConnectorSettings
from tests.harness import Harness, person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(90)

TEMPLATES = {
    "mail": {"subject": "{{ profile.first_name }}，购物车即将清空", "text": "明天移除"},
    "text": {"text": "新人券已到账", "template_code": "SMS_1", "params": {"name": "小明"}},
    "hello": {"text": "{{ profile.first_name }}，你好"},
}


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    providers: Providers,
    providers_url: str,
    refused_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Harness]:
    for name, value in {
        "JOURNEY_EMAIL_HTTP_BASE_URL": providers_url,
        "JOURNEY_EMAIL_HTTP_API_KEY": API_KEY,
        "JOURNEY_EMAIL_HTTP_FROM_ADDRESS": "hi@shop.test",
        "JOURNEY_SMS_BASE_URL": providers_url,
        "JOURNEY_SMS_ACCESS_KEY_ID": ALIYUN_KEY_ID,
        "JOURNEY_SMS_ACCESS_KEY_SECRET": ALIYUN_SECRET,
        "JOURNEY_SMS_SIGN_NAME": "鲜果铺",
        "JOURNEY_WECOM_BASE_URL": providers_url,
        "JOURNEY_WECOM_CORP_ID": CORP_ID,
        "JOURNEY_WECOM_SECRET": CORP_SECRET,
        "JOURNEY_WECOM_SENDER": "zhangsan",
        "JOURNEY_WEBHOOK_URL": refused_url,  # the default target; steps below name their own
        "JOURNEY_WEBHOOK_SECRET": "the-default-secret",
    }.items():
        monkeypatch.setenv(name, value)
    store = await sqlite_store(tmp_path)
    async with httpx.AsyncClient() as http:
        registry = ConnectorRegistry.from_settings(
            ConnectorSettings(
                channels={
                    "email": "email_http",
                    "sms": "sms",
                    "wecom": "wecom",
                    "webhook": "webhook",
                }
            ),
            http,
        )
        assert registry.check() == []
        async with running_worker(time_skipping_env, store, tmp_path, connectors=registry) as h:
            yield h
        await registry.aclose()
    await store.aclose()


def journey(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"j-{uuid.uuid4().hex[:8]}", "name": "t", "entry": {"api": True}, "steps": steps}


async def deliveries_by_step(h: Harness, spec: dict[str, Any]) -> dict[str, Any]:
    return {d.step_id: d for d in await h.store.deliveries(journey_id=spec["id"])}


async def run(h: Harness, env: WorkflowEnvironment, spec: dict[str, Any], people: list[Any]) -> Any:
    now = await env.get_current_time()
    version = await h.deploy(spec, TEMPLATES, now)
    await h.store.upsert_profiles(people)
    report = await h.enroller.enroll(version, [p.id for p in people], now)
    assert report["started"] == len(people)
    return {p.id: await h.result(spec["id"], p.id) for p in people}


async def test_a_provider_failing_half_its_requests_delivers_each_send_exactly_once(
    harness: Harness, time_skipping_env: WorkflowEnvironment, providers: Providers
) -> None:
    providers.fail_half = True  # half the 500s come after the provider accepted the message
    spec = journey([{"id": "mail", "send": {"channel": "email", "template": "mail"}}])
    people = [person(f"p{i}", email=f"p{i}@example.com") for i in range(8)]

    results = await run(harness, time_skipping_env, spec, people)

    assert all(r.status == "completed" for r in results.values())
    deliveries = await harness.store.deliveries(journey_id=spec["id"])
    assert len(deliveries) == 8
    assert all(d.status == "sent" for d in deliveries)
    assert len(providers.requests) > 8  # retries happened
    assert providers.delivered == {d.send_key: 1 for d in deliveries}
    for delivery in deliveries:  # the provider's id lands in the delivery log
        assert delivery.provider_message_id == providers.seen_keys[delivery.send_key]


async def test_a_gateway_timeout_from_an_sms_provider_is_unknown_and_never_resent(
    harness: Harness, time_skipping_env: WorkflowEnvironment, providers: Providers
) -> None:
    # The provider took the message; the gateway in front of it answered 504 (no Aliyun Code).
    providers.fail_next = [Answer(504, None, accept=True)]
    spec = journey(
        [
            {
                "id": "sms",
                "send": {
                    "channel": "sms",
                    "template": "text",
                    "on_failure": "mail",
                    "on_suppressed": "mail",
                },
            },
            {"id": "done", "exit": {}},
            {"id": "mail", "send": {"channel": "email", "template": "mail"}},
        ]
    )
    people = [person("p1", phone="+8613800000001", email="p1@example.com")]

    (result,) = (await run(harness, time_skipping_env, spec, people)).values()

    # Not retried, no other channel tried: it may have reached the person.
    assert result.path == ["sms", "done"]
    assert len(providers.requests) == 1
    by_step = await deliveries_by_step(harness, spec)
    assert (by_step["sms"].status, by_step["sms"].reason) == ("unknown", "no_answer:http_504")
    assert providers.accepted == {by_step["sms"].send_key: 1}


async def test_a_400_takes_on_failure_without_a_retry(
    harness: Harness, time_skipping_env: WorkflowEnvironment, providers: Providers
) -> None:
    spec = journey(
        [
            {"id": "mail", "send": {"channel": "email", "template": "mail", "on_failure": "sms"}},
            {"id": "done", "exit": {}},
            {"id": "sms", "send": {"channel": "sms", "template": "text"}},
        ]
    )
    people = [person("p1", email="p1@bounce.test", phone="+8613800000001")]

    (result,) = (await run(harness, time_skipping_env, spec, people)).values()

    assert result.path == ["mail", "sms"]
    mail_requests = [r for r in providers.requests if r.path == "/v3/mail/send"]
    assert len(mail_requests) == 1
    by_step = await deliveries_by_step(harness, spec)
    assert (by_step["mail"].status, by_step["mail"].reason) == ("failed", "provider:http_400")
    assert by_step["sms"].status == "sent"


async def test_each_webhook_step_posts_to_its_own_target(
    harness: Harness,
    time_skipping_env: WorkflowEnvironment,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", provider.secret)
    crm = {"url": provider.base_url + "/ok", "secret_env": "CRM_WEBHOOK_SECRET"}
    spec = journey(
        [
            {"id": "crm", "send": {"channel": "webhook", "template": "hello", "webhook": crm}},
            {
                "id": "unset",  # the worker lacks the named secret: on_failure, no retry
                "send": {
                    "channel": "webhook",
                    "template": "hello",
                    "webhook": {"url": provider.base_url + "/ok", "secret_env": "NOT_ON_WORKER"},
                    "on_failure": "done",
                },
            },
            {"id": "done", "exit": {}},
        ]
    )

    (result,) = (await run(harness, time_skipping_env, spec, [person("p1")])).values()

    assert result.path == ["crm", "unset", "done"]
    (request,) = provider.requests
    assert request.signature_valid and request.path == "/ok"
    assert request.json()["metadata"]["step_id"] == "crm"
    assert request.json()["content"] == {"text": "小明，你好"}
    by_step = await deliveries_by_step(harness, spec)
    assert by_step["crm"].status == "sent"
    assert by_step["crm"].provider_message_id == "prov-1"
    assert (by_step["unset"].status, by_step["unset"].reason) == (
        "failed",
        "provider:secret_env_missing:NOT_ON_WORKER",
    )


async def test_a_send_failing_for_a_day_is_given_up_and_takes_on_failure(
    harness: Harness,
    time_skipping_env: WorkflowEnvironment,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", provider.secret)
    down = {"url": provider.base_url + "/status/503", "secret_env": "CRM_WEBHOOK_SECRET"}
    spec = journey(
        [
            {
                "id": "crm",
                "send": {
                    "channel": "webhook",
                    "template": "hello",
                    "webhook": down,
                    "on_failure": "fallback",
                },
            },
            {"id": "done", "exit": {}},
            {"id": "fallback", "send": {"channel": "sms", "template": "text"}},
        ]
    )
    people = [person("p1", phone="+8613800000001")]

    (result,) = (await run(harness, time_skipping_env, spec, people)).values()

    # The provider answered 503 to every attempt until the send's day was up.
    assert result.path == ["crm", "fallback"]
    assert len(provider.requests) >= 1
    assert all(r.path == "/status/503" for r in provider.requests)
    by_step = await deliveries_by_step(harness, spec)
    assert (by_step["crm"].status, by_step["crm"].reason) == (
        "failed",
        "retries_exhausted:RetryableSendError",
    )
    assert by_step["fallback"].status == "sent"


async def test_logs_never_carry_an_address_or_a_token(
    harness: Harness,
    time_skipping_env: WorkflowEnvironment,
    providers: Providers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    providers.fail_half = True  # retries and failures log too
    spec = journey(
        [
            {"id": "mail", "send": {"channel": "email", "template": "mail"}},
            {"id": "sms", "send": {"channel": "sms", "template": "text"}},
            {"id": "wecom", "send": {"channel": "wecom", "template": "hello"}},
        ]
    )
    people = [
        person(
            f"p{i}",
            email=f"secret.person{i}@example.com",
            phone=f"+861380000999{i}",
            wecom_external_userid=f"wmSecretContact{i}",
        )
        for i in range(3)
    ]
    # INFO is the production level; at DEBUG, aiosqlite traces every SQL statement with its
    # parameters (the store's concern, not the connectors').
    caplog.set_level(logging.INFO)
    with structlog.testing.capture_logs() as captured:
        results = await run(harness, time_skipping_env, spec, people)
    assert all(r.status == "completed" for r in results.values())
    assert any(e["event"] == "message_sent" for e in captured)
    assert any(e["event"] == "send_retry" for e in captured)

    text = "\n".join(repr(e) for e in captured) + "\n" + caplog.text
    for forbidden in [
        "secret.person",
        "138000099",
        "wmSecretContact",
        "wecom-token-",
        CORP_SECRET,
        ALIYUN_SECRET,
        API_KEY,
    ]:
        assert forbidden not in text, forbidden
