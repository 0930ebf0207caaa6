"""Channels map to connectors; what cannot send is reported by name before the first send."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import SecretStr

from connectors.base import (
    ConnectorConfigError,
    DeliveryReceipt,
    OutboundMessage,
)
from connectors.console import ConsoleConnector
from connectors.registry import (
    BUILTIN_FACTORIES,
    DEFAULT_CHANNELS,
    ConnectorRegistry,
    ConnectorSettings,
    UnknownChannel,
)
from connectors.webhook import WebhookConnector

if TYPE_CHECKING:
    from provider_stub import Provider


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JOURNEY_"):
            monkeypatch.delenv(name)


def message(channel: str) -> OutboundMessage:
    return OutboundMessage(
        send_key=f"j:p1:{channel}:1",
        channel=channel,
        to="p1@example.com",
        content={"text": "hi"},
        metadata={"journey_id": "j"},
    )


def test_settings_come_from_journey_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JOURNEY_CONSOLE_PATH", str(tmp_path / "sends.jsonl"))
    monkeypatch.setenv("JOURNEY_WEBHOOK_URL", "https://hooks.example.com/in")
    monkeypatch.setenv("JOURNEY_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("JOURNEY_CHANNELS", json.dumps({"email": "webhook", "sms": "console"}))
    monkeypatch.setenv("JOURNEY_DATABASE_URL", "sqlite://")  # another layer's: ignored here

    settings = ConnectorSettings()
    assert settings.console_path == tmp_path / "sends.jsonl"
    assert settings.webhook_url == "https://hooks.example.com/in"
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.channels == {"email": "webhook", "sms": "console"}


def test_default_mapping_sends_every_channel_to_the_console() -> None:
    assert ConnectorSettings().channels == dict(DEFAULT_CHANNELS)


async def test_channels_map_to_shared_lazily_built_connectors(
    tmp_path: Path, http_client: httpx.AsyncClient
) -> None:
    path = tmp_path / "sends.jsonl"
    registry = ConnectorRegistry.from_settings(ConnectorSettings(console_path=path), http_client)

    email = registry.for_channel("email")
    assert isinstance(email, ConsoleConnector)
    assert registry.for_channel("sms") is email
    assert email.name == "console"
    await email.send(message("email"))
    await registry.for_channel("wecom").send(message("wecom"))
    await registry.aclose()

    channels = [json.loads(line)["channel"] for line in path.read_text().splitlines()]
    assert channels == ["email", "wecom"]


async def test_an_unknown_channel_is_named_with_the_known_ones(
    http_client: httpx.AsyncClient,
) -> None:
    registry = ConnectorRegistry.from_settings(ConnectorSettings(), http_client)
    with pytest.raises(UnknownChannel) as info:
        registry.for_channel("fax")
    assert isinstance(info.value, ConnectorConfigError)
    assert info.value.channel == "fax"
    assert "'fax'" in str(info.value)
    assert "console, email, push, sms, webhook, wecom" in str(info.value)
    assert info.value.env_var == "JOURNEY_CHANNELS"


async def test_an_unconfigured_webhook_is_reported_by_name_before_any_send(
    http_client: httpx.AsyncClient,
) -> None:
    registry = ConnectorRegistry.from_settings(ConnectorSettings(), http_client)

    problems = registry.check()
    assert len(problems) == 1
    assert "'webhook'" in problems[0]
    assert "JOURNEY_WEBHOOK_URL" in problems[0]
    assert "JOURNEY_WEBHOOK_SECRET" in problems[0]
    with pytest.raises(ConnectorConfigError) as info:
        registry.for_channel("webhook")
    assert info.value.env_var == "JOURNEY_WEBHOOK_URL"
    assert isinstance(registry.for_channel("email"), ConsoleConnector)  # others still work


async def test_a_webhook_without_a_secret_is_not_configured(
    http_client: httpx.AsyncClient,
) -> None:
    settings = ConnectorSettings(webhook_url="https://hooks.example.com/in")
    (problem,) = ConnectorRegistry.from_settings(settings, http_client).check()
    assert "JOURNEY_WEBHOOK_SECRET is not set" in problem
    assert "JOURNEY_WEBHOOK_URL" not in problem


async def test_an_invalid_webhook_url_is_reported(http_client: httpx.AsyncClient) -> None:
    settings = ConnectorSettings(webhook_url="hooks.example.com", webhook_secret=SecretStr("s"))
    (problem,) = ConnectorRegistry.from_settings(settings, http_client).check()
    assert "JOURNEY_WEBHOOK_URL" in problem


async def test_a_channel_mapped_to_a_missing_connector_is_reported(
    http_client: httpx.AsyncClient,
) -> None:
    settings = ConnectorSettings(channels={"email": "smtp", "sms": "console"})
    registry = ConnectorRegistry.from_settings(settings, http_client)
    (problem,) = registry.check()
    assert "'email'" in problem
    assert "'smtp' is not installed" in problem
    with pytest.raises(ConnectorConfigError, match="smtp"):
        registry.for_channel("email")


async def test_a_configured_webhook_channel_sends_through_the_registry(
    provider: Provider, http_client: httpx.AsyncClient
) -> None:
    settings = ConnectorSettings(
        webhook_url=provider.base_url + "/ok",
        webhook_secret=SecretStr(provider.secret),
        channels={"email": "webhook"},
    )
    registry = ConnectorRegistry.from_settings(settings, http_client)
    assert registry.check() == []

    connector = registry.for_channel("email")
    assert isinstance(connector, WebhookConnector)
    receipt = await connector.send(message("email"))
    await registry.aclose()

    assert receipt.provider_message_id.startswith("prov-")
    (request,) = provider.requests
    assert request.signature_valid
    assert request.json()["channel"] == "email"


async def test_installed_lists_every_connector_and_whether_it_can_send(
    http_client: httpx.AsyncClient,
) -> None:
    settings = ConnectorSettings(channels={"email": "console", "sms": "console"})
    registry = ConnectorRegistry.from_settings(settings, http_client)
    rows = {name: (configured, detail) for name, configured, detail in registry.installed()}
    assert rows["console"] == (True, "channels: email, sms; delivery at_most_once")
    assert rows["webhook"][0] is False
    assert "JOURNEY_WEBHOOK_URL" in rows["webhook"][1]
    assert registry.check() == []  # webhook is installed but no channel uses it


# --- entry-point plugins ----------------------------------------------------------------------


def install_plugin(site: Path, dist: str, entry_points: dict[str, str], module: str) -> None:
    """A real installed distribution (dist-info with entry_points.txt) on a sys.path entry."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[journey_engine.connectors]\n{lines}\n")
    (site / f"{dist}.py").write_text(textwrap.dedent(module))


PLUGIN = """
    from datetime import UTC, datetime

    from connectors.base import ConnectorConfigError, DeliveryReceipt


    class PigeonConnector:
        name = "pigeon"

        def __init__(self, loft):
            self.loft = loft
            self.sent = []
            self.closed = False

        async def send(self, message):
            self.sent.append(message.send_key)
            return DeliveryReceipt("pigeon-" + message.send_key, datetime.now(UTC))

        async def aclose(self):
            self.closed = True


    def make_pigeon(settings, client):
        return PigeonConnector(loft="north")


    def make_unconfigured(settings, client):
        raise ConnectorConfigError("JOURNEY_RAVEN_TOKEN is not set", env_var="JOURNEY_RAVEN_TOKEN")


    def make_broken(settings, client):
        raise RuntimeError("plugin bug")
"""


async def test_connectors_are_discovered_from_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_client: httpx.AsyncClient
) -> None:
    install_plugin(
        tmp_path,
        "journey_pigeon_plugin",
        {
            "pigeon": "journey_pigeon_plugin:make_pigeon",
            "raven": "journey_pigeon_plugin:make_unconfigured",
            "owl": "journey_pigeon_plugin:make_broken",
            "crow": "journey_pigeon_plugin:does_not_exist",
        },
        PLUGIN,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = ConnectorSettings(
        channels={"push": "pigeon", "sms": "raven", "email": "console", "wecom": "owl"}
    )
    registry = ConnectorRegistry.from_settings(settings, http_client)

    pigeon = registry.for_channel("push")
    assert pigeon.name == "pigeon"
    receipt = await pigeon.send(message("push"))
    assert isinstance(receipt, DeliveryReceipt)
    assert receipt.provider_message_id == "pigeon-j:p1:push:1"

    problems = registry.check()
    assert len(problems) == 2
    raven, owl = sorted(problems, key=lambda line: "raven" not in line)
    assert "'sms'" in raven
    assert "JOURNEY_RAVEN_TOKEN" in raven
    assert "'wecom'" in owl
    assert "plugin bug" in owl

    rows = {name: (configured, detail) for name, configured, detail in registry.installed()}
    assert rows["pigeon"] == (True, "channels: push; delivery at_most_once")  # undeclared
    assert rows["raven"][0] is False
    assert rows["crow"][0] is False
    assert "failed to load" in rows["crow"][1]
    assert set(rows) == {*BUILTIN_FACTORIES, "pigeon", "raven", "owl", "crow"}

    await registry.aclose()
    assert pigeon.closed  # type: ignore[attr-defined]


async def test_aclose_closes_every_connector_and_reports_all_failures(
    http_client: httpx.AsyncClient,
) -> None:
    closed: list[str] = []

    class Closing:
        def __init__(self, name: str, fail: bool) -> None:
            self.name = name
            self.fail = fail

        async def send(self, message: OutboundMessage) -> DeliveryReceipt:
            raise NotImplementedError

        async def aclose(self) -> None:
            closed.append(self.name)
            if self.fail:
                raise OSError(f"{self.name} close failed")

    settings = ConnectorSettings(channels={"a": "a", "b": "b", "c": "c"})
    registry = ConnectorRegistry(
        settings,
        http_client,
        {
            "a": lambda s, c: Closing("a", fail=True),
            "b": lambda s, c: Closing("b", fail=False),
            "c": lambda s, c: Closing("c", fail=True),
        },
    )
    assert registry.check() == []
    with pytest.raises(ExceptionGroup) as info:
        await registry.aclose()
    assert sorted(closed) == ["a", "b", "c"]
    assert len(info.value.exceptions) == 2
