"""Which connector sends each channel: settings, built-ins and entry-point plugins.

A journey names a *channel* (``email``, ``sms``, ``wecom``...); ``JOURNEY_CHANNELS`` maps each
channel to a *connector* by name. Connectors come from the built-ins below and from the
entry-point group ``journey_engine.connectors``, where each entry point names a factory::

    # a plugin's pyproject.toml
    [project.entry-points."journey_engine.connectors"]
    acme_sms = "acme_connector:make_connector"

    # acme_connector.py
    def make_connector(settings: ConnectorSettings, client: httpx.AsyncClient) -> Connector:
        ...  # read your own settings (e.g. a BaseSettings with env_prefix "JOURNEY_ACME_");
             # raise ConnectorConfigError(..., env_var=...) when one is missing

A factory must not do I/O: the registry may call it only to learn whether the connector is
configured. An entry point with a built-in's name replaces the built-in.

Built-ins: ``console``, ``webhook``, ``email_smtp``, ``email_http``, ``sms``, ``wecom``, ``push``;
each reads its own ``JOURNEY_<NAME>_*`` settings (see its module). A connector's declared
``limits`` (or ``JOURNEY_LIMITS``, e.g. ``{"sms": {"rate_per_second": 20, "max_concurrency": 4}}``,
which wins) are applied by wrapping it in :class:`connectors.limits.LimitedConnector`.

The worker calls :meth:`ConnectorRegistry.check` at start, so a channel mapped to a connector
that is not installed or not configured is reported by name before any journey runs.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import (
    Connector,
    ConnectorConfigError,
    ProviderQuota,
    SendLimits,
    delivery_guarantee,
)
from connectors.console import ConsoleConnector
from connectors.email_http import EmailHttpConnector
from connectors.email_smtp import SmtpConnector
from connectors.limits import LimitedConnector, PacerFactory, limits_of, local_pacer
from connectors.push import PushConnector
from connectors.sms import SmsConnector
from connectors.webhook import WebhookConnector
from connectors.wecom import WeComConnector

__all__ = [
    "BUILTIN_FACTORIES",
    "DEFAULT_CHANNELS",
    "ENTRY_POINT_GROUP",
    "ConnectorFactory",
    "ConnectorRegistry",
    "ConnectorSettings",
    "LimitSettings",
    "UnknownChannel",
]

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "journey_engine.connectors"

DEFAULT_CHANNELS: Mapping[str, str] = {
    "email": "console",
    "sms": "console",
    "wecom": "console",
    "push": "console",
    "console": "console",
    "webhook": "webhook",
}


class LimitSettings(BaseModel):
    """A connector's limits as configured in ``JOURNEY_LIMITS``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_per_second: float | None = Field(None, gt=0)
    burst: int = Field(1, ge=1)
    max_concurrency: int | None = Field(None, ge=1)

    def as_limits(self) -> SendLimits:
        return SendLimits(self.rate_per_second, self.burst, self.max_concurrency)


class ConnectorSettings(BaseSettings):
    """Connector settings from ``JOURNEY_*`` environment variables (secrets never in YAML)."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    console_path: Path | None = Field(
        None, description="file the console connector appends JSON lines to; stdout if unset"
    )
    webhook_url: str | None = Field(None, description="http(s) URL the webhook connector posts to")
    webhook_secret: SecretStr | None = Field(None, description="HMAC key signing webhook bodies")
    webhook_timeout: float = Field(10.0, gt=0, description="seconds per webhook request")
    channels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CHANNELS),
        description=(
            "journey channel -> connector name, as JSON; replaces the default mapping as a whole"
        ),
    )
    limits: dict[str, LimitSettings] = Field(
        default_factory=dict,
        description="connector name -> rate/concurrency limits, as JSON; overrides its defaults",
    )


ConnectorFactory = Callable[[ConnectorSettings, httpx.AsyncClient], Connector]
"""Builds a connector from settings; raises ConnectorConfigError when not configured."""


class UnknownChannel(ConnectorConfigError):
    """A journey names a channel that ``JOURNEY_CHANNELS`` does not map."""

    def __init__(self, channel: str, known: list[str]) -> None:
        super().__init__(
            f"unknown channel {channel!r}; known channels: {', '.join(known) or '(none)'}"
            " (map it in JOURNEY_CHANNELS)",
            env_var="JOURNEY_CHANNELS",
        )
        self.channel = channel
        self.known = known


def console_factory(settings: ConnectorSettings, client: httpx.AsyncClient) -> Connector:
    """The console connector; always configured (stdout when JOURNEY_CONSOLE_PATH is unset)."""
    return ConsoleConnector(settings.console_path)


def webhook_factory(settings: ConnectorSettings, client: httpx.AsyncClient) -> Connector:
    """The webhook connector; needs JOURNEY_WEBHOOK_URL and JOURNEY_WEBHOOK_SECRET."""
    url = settings.webhook_url or ""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    missing = [
        env
        for env, value in (("JOURNEY_WEBHOOK_URL", url), ("JOURNEY_WEBHOOK_SECRET", secret))
        if not value
    ]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ConnectorConfigError(f"{' and '.join(missing)} {verb} not set", env_var=missing[0])
    try:
        return WebhookConnector(url, secret, client, timeout=settings.webhook_timeout)
    except ConnectorConfigError as exc:
        raise ConnectorConfigError(
            f"JOURNEY_WEBHOOK_URL: {exc}", env_var="JOURNEY_WEBHOOK_URL"
        ) from exc


BUILTIN_FACTORIES: Mapping[str, ConnectorFactory] = {
    "console": console_factory,
    "webhook": webhook_factory,
    "email_smtp": lambda settings, client: SmtpConnector.from_env(client),
    "email_http": lambda settings, client: EmailHttpConnector.from_env(client),
    "sms": lambda settings, client: SmsConnector.from_env(client),
    "wecom": lambda settings, client: WeComConnector.from_env(client),
    "push": lambda settings, client: PushConnector.from_env(client),
}


def discover_factories() -> tuple[dict[str, ConnectorFactory], dict[str, str]]:
    """Built-in factories plus those of the entry-point group, and entry points that failed.

    A plugin that fails to import is not fatal here: it is reported by ``check()`` when a channel
    uses it, and by ``installed()``.
    """
    factories: dict[str, ConnectorFactory] = dict(BUILTIN_FACTORIES)
    failures: dict[str, str] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = entry_point.name
        try:
            loaded = entry_point.load()
        except Exception as exc:  # any plugin bug: recorded and reported, never hidden
            failures[name] = f"entry point {entry_point.value!r} failed to load: {exc!r}"
            factories.pop(name, None)
            continue
        if not callable(loaded):
            failures[name] = f"entry point {entry_point.value!r} is not callable"
            factories.pop(name, None)
            continue
        if name in BUILTIN_FACTORIES:
            log.info("connector_overridden", connector=name, entry_point=entry_point.value)
        factories[name] = loaded
        failures.pop(name, None)
    return factories, failures


class ConnectorRegistry:
    """Connectors by channel, created on first use and shared by the channels mapped to them.

    The registry does not own the HTTP client it is given; the composition root closes it after
    :meth:`aclose`.
    """

    def __init__(
        self,
        settings: ConnectorSettings,
        client: httpx.AsyncClient,
        factories: Mapping[str, ConnectorFactory],
        load_failures: Mapping[str, str] | None = None,
        pacer_factory: PacerFactory = local_pacer,
    ) -> None:
        self._settings = settings
        self._pacer_factory = pacer_factory
        self._client = client
        self._factories = dict(factories)
        self._load_failures = dict(load_failures or {})
        self._connectors: dict[str, Connector] = {}
        self._errors: dict[str, ConnectorConfigError] = {}

    @classmethod
    def from_settings(
        cls,
        settings: ConnectorSettings,
        client: httpx.AsyncClient,
        pacer_factory: PacerFactory = local_pacer,
    ) -> ConnectorRegistry:
        """The built-ins plus every installed ``journey_engine.connectors`` entry point; rate
        limits are kept by ``pacer_factory``'s pacers (per process unless told otherwise)."""
        factories, failures = discover_factories()
        return cls(settings, client, factories, failures, pacer_factory)

    @property
    def channels(self) -> Mapping[str, str]:
        """Journey channel -> connector name."""
        return dict(self._settings.channels)

    def for_channel(self, channel: str) -> Connector:
        """The connector that sends ``channel``.

        Raises :class:`UnknownChannel` for an unmapped channel and :class:`ConnectorConfigError`
        when the mapped connector is not installed or not configured.
        """
        name = self._settings.channels.get(channel)
        if name is None:
            raise UnknownChannel(channel, sorted(self._settings.channels))
        return self._connector(name)

    def check(self) -> list[str]:
        """One line per channel that cannot send; empty when every mapped channel can."""
        problems = []
        for channel, name in sorted(self._settings.channels.items()):
            try:
                self._connector(name)
            except ConnectorConfigError as exc:
                problems.append(f"channel {channel!r} -> connector {name!r}: {exc}")
        return problems

    def quotas(self) -> dict[str, ProviderQuota]:
        """Journey channel -> the provider quota its connector declares (WeCom's monthly group
        messages), for the cap service to enforce on top of the policy. Unconfigured ones are
        skipped."""
        found = {}
        for channel in sorted(self._settings.channels):
            try:
                quota = getattr(self.for_channel(channel), "quota", None)
            except ConnectorConfigError:
                continue
            if isinstance(quota, ProviderQuota):
                found[channel] = quota
        return found

    def installed(self) -> list[tuple[str, bool, str]]:
        """``(connector name, configured, detail)`` for every installed connector, by name.

        ``detail`` is the problem for an unconfigured connector, else the channels it sends and
        its delivery guarantee. Unmapped connectors are built to learn whether they are
        configured, then dropped.
        """
        mapped = set(self._settings.channels.values())
        rows = []
        for name in sorted(self._factories.keys() | self._load_failures.keys()):
            try:
                connector = self._connector(name) if name in mapped else self._build(name)
            except ConnectorConfigError as exc:
                rows.append((name, False, str(exc)))
                continue
            channels = sorted(c for c, n in self._settings.channels.items() if n == name)
            detail = f"channels: {', '.join(channels)}" if channels else "no channel mapped to it"
            rows.append((name, True, f"{detail}; delivery {delivery_guarantee(connector)}"))
        return rows

    async def aclose(self) -> None:
        """Close every connector created; raises an ExceptionGroup if any failed to close."""
        connectors, self._connectors = list(self._connectors.values()), {}
        failures = []
        for connector in connectors:
            try:
                await connector.aclose()
            except Exception as exc:  # close the others, then report all
                failures.append(exc)
        if failures:
            raise ExceptionGroup("connectors failed to close", failures)

    def _connector(self, name: str) -> Connector:
        if name in self._connectors:
            return self._connectors[name]
        if name in self._errors:
            # A fresh traceback each time: re-raising one instance would grow it on every send.
            raise self._errors[name].with_traceback(None)
        try:
            connector = self._build(name)
        except ConnectorConfigError as exc:
            self._errors[name] = exc  # settings do not change while the registry lives
            raise
        self._connectors[name] = connector
        return connector

    def _build(self, name: str) -> Connector:
        if name in self._load_failures:
            raise ConnectorConfigError(self._load_failures[name])
        factory = self._factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self._factories))
            raise ConnectorConfigError(f"connector {name!r} is not installed (installed: {known})")
        try:
            connector = factory(self._settings, self._client)
        except ConnectorConfigError:
            raise
        except Exception as exc:  # a plugin bug, surfaced as a config problem at start
            raise ConnectorConfigError(f"connector {name!r} factory raised {exc!r}") from exc
        if not isinstance(connector, Connector):
            raise ConnectorConfigError(
                f"connector {name!r} factory returned {type(connector).__name__}, not a Connector"
            )
        override = self._settings.limits.get(name)
        limits = override.as_limits() if override is not None else limits_of(connector)
        if limits.unlimited:
            return connector
        return LimitedConnector(connector, limits, self._pacer_factory)
