"""``journey connectors`` and ``journey preview``, through the typer app."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from engine.cli.connectors_cmd import register
from engine.domain import Profile
from engine.store import Store

app = typer.Typer()
register(app)
runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JOURNEY_"):
            monkeypatch.delenv(name)


def test_connectors_lists_each_one_and_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEY_CHANNELS", '{"email": "console", "wecom": "wecom"}')
    monkeypatch.setenv("JOURNEY_WECOM_CORP_ID", "ww1")
    monkeypatch.setenv("JOURNEY_WECOM_SECRET", "s3cret-value")
    monkeypatch.setenv("JOURNEY_WECOM_SENDER", "zhangsan")

    result = runner.invoke(app, ["connectors"])

    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "ok" in lines["console"] and "channels: email" in lines["console"]
    assert "ok" in lines["wecom"] and "channels: wecom" in lines["wecom"]
    assert "delivery at_most_once" in lines["wecom"]  # WeCom drops no repeated message
    assert "missing" in lines["sms"] and "JOURNEY_SMS_ACCESS_KEY_ID" in lines["sms"]
    assert "missing" in lines["email_smtp"] and "JOURNEY_SMTP_HOST" in lines["email_smtp"]
    assert "quota: channel 'wecom': 4 group_message per month" in result.stdout
    assert "s3cret-value" not in result.stdout


def test_connectors_fails_when_a_mapped_channel_cannot_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEY_CHANNELS", '{"sms": "sms"}')
    result = runner.invoke(app, ["connectors"])
    assert result.exit_code == 1
    assert "cannot send: channel 'sms'" in result.stderr
    assert "JOURNEY_SMS_SIGN_NAME" in result.stderr


@pytest.fixture
def stored_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}"
    monkeypatch.setenv("JOURNEY_DATABASE_URL", url)

    async def seed() -> None:
        store = Store.from_url(url)
        await store.migrate()
        await store.upsert_profiles(
            [Profile("p1", {"first_name": "Ann", "cart_value": 250}, locale="en-GB")]
        )
        await store.aclose()

    asyncio.run(seed())
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "cart.yaml").write_text(
        textwrap.dedent(
            """
            subject: "{{ profile.first_name | default('朋友') }}，还有{{ profile.cart_value }}元"
            text: "hi"
            locales:
              en:
                subject: "{{ profile.first_name }}, {{ profile.cart_value }} in your cart"
            """
        ),
        encoding="utf-8",
    )
    return templates


def test_preview_renders_a_template_for_a_stored_profile_in_their_locale(
    stored_profile: Path,
) -> None:
    result = runner.invoke(
        app, ["preview", "cart", "--profile", "p1", "--templates", str(stored_profile)]
    )
    assert result.exit_code == 0, result.output
    assert "# cart@en for p1 (locale en-GB)" in result.stdout
    assert "subject: Ann, 250 in your cart" in result.stdout

    args = ["preview", "cart", "--profile", "p1", "--locale", "zh-CN"]
    chinese = runner.invoke(
        app,
        [*args, "--templates", str(stored_profile)],
    )
    assert "subject: Ann，还有250元" in chinese.stdout


def test_preview_says_what_is_wrong(stored_profile: Path) -> None:
    missing = runner.invoke(
        app, ["preview", "cart", "--profile", "nobody", "--templates", str(stored_profile)]
    )
    assert missing.exit_code == 1 and "no profile 'nobody'" in missing.stderr
    (stored_profile / "bad.yaml").write_text('text: "{{ nope }}"\n')
    bad = runner.invoke(
        app, ["preview", "bad", "--profile", "p1", "--templates", str(stored_profile)]
    )
    assert bad.exit_code == 1 and "bad.yaml:1: template 'bad' field 'text'" in bad.stderr
