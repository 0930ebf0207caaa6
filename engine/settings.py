"""Settings, read in one place (environment variables prefixed ``JOURNEY_``) and passed down.

Nothing here opens a connection; composition roots (worker, api, cli) read `Settings()` once.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SEARCH_ATTRIBUTES = ("JourneyId", "JourneyVersion", "ProfileId", "JourneyStep")
"""Custom Keyword search attributes the runtime keeps up to date for operators."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    home: Path = Field(Path(".journey"), description="state of the embedded stack")
    database_url: str = Field("", description="SQLAlchemy async URL; default: SQLite under `home`")
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "journeys"
    redis_url: str = "redis://localhost:6379/0"
    journeys_dir: Path = Path("journeys")
    policy_path: Path | None = Field(None, description="default: policy.yaml in journeys_dir")
    api_keys: list[SecretStr] = Field(default_factory=list)
    public_url: str = Field(
        "http://127.0.0.1:8000", description="where people reach the API (unsubscribe links)"
    )
    unsubscribe_secret: SecretStr | None = None
    report_secret: SecretStr | None = Field(
        None, description="signs report links (`journey report --link`); the API must share it"
    )
    time_scale: float = Field(
        1.0, gt=0, description="divides every wait; >1 only for demos and rehearsals"
    )

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
