"""One worker's sending side, run as its own process by test_shared_rate: the connector registry
exactly as `journey worker` wires it (engine.runner.connector_registry), pushing N webhook sends
at once. Settings come from the environment, as in a worker."""

from __future__ import annotations

import asyncio
import sys

import httpx

from connectors.base import OutboundMessage
from engine.caps.factory import redis_client
from engine.runner import connector_registry
from engine.settings import Settings


async def main(worker: str, count: int) -> None:
    settings = Settings()
    async with httpx.AsyncClient() as http:
        pacing = redis_client(settings)
        registry = connector_registry(http, pacing)
        try:
            webhook = registry.for_channel("webhook")
            await asyncio.gather(
                *(
                    webhook.send(
                        OutboundMessage(f"{worker}-{i}", "webhook", f"p{i}", {"text": "hi"})
                    )
                    for i in range(count)
                )
            )
        finally:
            await registry.aclose()
            await pacing.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
