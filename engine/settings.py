"""Settings, read in one place (environment variables prefixed ``JOURNEY_``) and passed down.

Nothing here opens a connection; composition roots (worker, api, cli) read `Settings()` once.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

WORKFLOW_TASK_SLOTS = 100
"""Workflow tasks a worker process runs at once, unless JOURNEY_WORKFLOW_TASK_SLOTS says."""

SEARCH_ATTRIBUTES = ("JourneyId", "JourneyVersion", "ProfileId", "JourneyStep")
"""Custom Keyword search attributes the runtime keeps up to date for operators."""


class LogSettings(BaseSettings):
    """The logging settings alone: read before any command, so a broken unrelated setting never
    stops logging from being configured (see `engine.logs`)."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    log_format: Literal["json", "console"] | None = Field(
        None, description="json | console; default: console on a terminal, json otherwise"
    )
    log_level: Literal["debug", "info", "warning", "error"] | None = Field(
        None, description="default: info"
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class Settings(LogSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    home: Path = Field(Path(".journey"), description="state of the embedded stack")
    database_url: str = Field("", description="SQLAlchemy async URL; default: SQLite under `home`")
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "journeys"
    redis_url: str = "redis://localhost:6379/0"
    alert_webhook: str | None = Field(
        None, description="where `journey anomalies` POSTs each anomaly (once per window)"
    )
    journeys_dir: Path = Path("journeys")
    policy_path: Path | None = Field(None, description="default: policy.yaml in journeys_dir")
    api_keys: list[SecretStr] = Field(default_factory=list)
    public_url: str = Field(
        "http://127.0.0.1:8000", description="where people reach the API (unsubscribe links)"
    )
    unsubscribe_secret: SecretStr | None = None
    unsubscribe_previous_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="secrets that signed links already sent: still accepted (rotation)",
    )
    default_region: str = Field(
        "CN", description="ISO 3166 region where phone numbers without a country code are read"
    )
    report_secret: SecretStr | None = Field(
        None, description="signs report links (`journey report --link`); the API must share it"
    )
    workflow_task_slots: int = Field(
        WORKFLOW_TASK_SLOTS,
        ge=2,
        description="journey worker: workflow tasks one process runs at once",
    )
    time_scale: float = Field(
        1.0, gt=0, description="divides every wait; >1 only for demos and rehearsals"
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="journey worker: serve Prometheus /metrics on this port"
    )
    temporal_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="journey worker: serve the Temporal SDK's own metrics on this port",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="interface of the worker's two metrics ports (0.0.0.0: all)"
    )

    def temporal_metrics_address(self) -> str | None:
        """``host:port`` of the Temporal SDK's metrics endpoint, or None when not asked for."""
        if self.temporal_metrics_port is None:
            return None
        host = f"[{self.metrics_host}]" if ":" in self.metrics_host else self.metrics_host
        return f"{host}:{self.temporal_metrics_port}"

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}: an ISO 3166 code such as CN, US, GB")
        return value.upper()

    def resolved_unsubscribe_secrets(self) -> list[str]:
        """The secret that signs unsubscribe links, then those still accepted
        (JOURNEY_UNSUBSCRIBE_PREVIOUS_SECRETS, a JSON list)."""
        previous = [s.get_secret_value() for s in self.unsubscribe_previous_secrets]
        return [self.resolved_unsubscribe_secret(), *previous]

    def resolved_unsubscribe_secret(self) -> str:
        """JOURNEY_UNSUBSCRIBE_SECRET, or (embedded stack) a random one kept under ``home``."""
        return self._secret(self.unsubscribe_secret, "unsubscribe.secret")

    def resolved_report_secret(self) -> str:
        """JOURNEY_REPORT_SECRET, or (one machine) a random one kept under ``home``."""
        return self._secret(self.report_secret, "report.secret")

    def _secret(self, configured: SecretStr | None, file_name: str) -> str:
        if configured is not None:
            return configured.get_secret_value()
        path = self.home / file_name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.home / 'journey.db'}"


def settings_problem(exc: SettingsError | ValidationError) -> str:
    """One line naming the environment variable that `Settings()` could not read (never its
    value: it may be a secret)."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"JOURNEY_{str(error['loc'][0]).upper()}: {error['msg']}" for error in exc.errors()
        )
    field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
    name = f"JOURNEY_{field.upper()}" if field else "a JOURNEY_* variable"
    return f'{name} is not valid JSON (lists and mappings are written as JSON, e.g. ["a"])'
