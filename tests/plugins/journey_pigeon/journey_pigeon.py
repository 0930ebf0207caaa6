"""A third-party connector: every message goes into a loft directory, one JSON file per send key.

Written the way a connector author would, against ``connectors.base`` only.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_settings import SettingsConfigDict

from connectors.base import (
    DeliveryReceipt,
    OutboundMessage,
    PermanentSendError,
    ProviderSettings,
    SendLimits,
)


class PigeonSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_PIGEON_", extra="ignore")

    loft: Path | None = None


class PigeonConnector:
    name = "pigeon_post"

    def __init__(self, settings: PigeonSettings) -> None:
        settings.require("loft")
        self.loft = settings.loft or Path()
        self.limits = SendLimits(max_concurrency=2)

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if not message.to:
            raise PermanentSendError("no roost", code="no_roost")
        self.loft.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(message.send_key.encode()).hexdigest()[:16]
        record = {"send_key": message.send_key, "content": dict(message.content)}
        (self.loft / f"{digest}.json").write_text(json.dumps(record, ensure_ascii=False))
        return DeliveryReceipt(f"pigeon-{digest}", datetime.now(UTC))

    async def aclose(self) -> None:
        pass


def make_connector(settings: Any, client: Any) -> PigeonConnector:
    return PigeonConnector(PigeonSettings.load())
