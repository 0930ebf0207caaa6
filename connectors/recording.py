"""The recording connector: keeps every message in memory and sends nothing.

``journey simulate`` maps every channel to it, so a rehearsal runs the real send path (caps,
rendering, the delivery log) without a message leaving the machine.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.base import DeliveryReceipt, OutboundMessage


class RecordingConnector:
    """Records each message in :attr:`messages` (in send order) and accepts it."""

    name = "recording"

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.messages.append(message)
        return DeliveryReceipt(
            provider_message_id=f"recorded-{message.send_key}", accepted_at=datetime.now(UTC)
        )

    async def aclose(self) -> None:
        return None
