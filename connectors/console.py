"""The console connector: one JSON line per message, to a file or stdout.

For development, demos and tests: every channel can be mapped to it, and the file it writes is a
readable record of what a journey would have sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import structlog

from connectors.base import DeliveryGuarantee, DeliveryReceipt, OutboundMessage

log = structlog.get_logger(__name__)


class ConsoleConnector:
    """Appends ``{"send_key","channel","to","content","metadata","sent_at"}`` lines.

    Safe for concurrent sends from tasks, threads and processes: each line is written whole by a
    single ``write`` to a file opened with ``O_APPEND`` (under a lock within this process), in a
    worker thread so a slow disk or a full stdout pipe never blocks the event loop. The file and
    its parent directory are created on first send.
    """

    name = "console"
    # A file keeps every line appended: a second write is a second message.
    delivery: ClassVar[DeliveryGuarantee] = "at_most_once"

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        sent_at = datetime.now(UTC)
        record = {
            "send_key": message.send_key,
            "channel": message.channel,
            "to": message.to,
            "content": dict(message.content),
            "metadata": dict(message.metadata),
            "sent_at": sent_at.isoformat(),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        await asyncio.to_thread(self._append, line)
        log.info(
            "message_sent", connector=self.name, channel=message.channel, send_key=message.send_key
        )
        return DeliveryReceipt(
            provider_message_id=f"console-{message.send_key}", accepted_at=sent_at
        )

    def _append(self, line: str) -> None:
        with self._lock:
            if self._path is None:
                # Looked up on each write so redirections (and pytest's capture) are honoured.
                sys.stdout.write(line)
                sys.stdout.flush()
                return
            if self._fd is None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            data = memoryview(line.encode("utf-8"))
            while data:  # a regular file takes it in one write; loop in case it does not
                written = os.write(self._fd, data)
                data = data[written:]

    async def aclose(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
