"""The console connector writes one whole JSON line per message, whoever sends concurrently."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from connectors.base import Connector, OutboundMessage
from connectors.console import ConsoleConnector


def message(i: int, channel: str = "email") -> OutboundMessage:
    return OutboundMessage(
        send_key=f"cart:p{i}:copy_a:1",
        channel=channel,
        to=f"person{i}@example.com",
        # Long enough that an interleaved write would break a line.
        content={"subject": f"购物车 {i}", "html": "<p>" + "x" * 5000 + "</p>"},
        metadata={"journey_id": "cart", "step_id": "copy_a", "profile_id": f"p{i}"},
    )


def read_lines(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


async def test_appends_one_json_line_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out" / "sends.jsonl"  # parent created on first send
    connector = ConsoleConnector(path)
    assert isinstance(connector, Connector)
    receipt = await connector.send(message(1))
    await connector.send(message(2, channel="sms"))
    await connector.aclose()

    first, second = read_lines(path)
    assert first["send_key"] == "cart:p1:copy_a:1"
    assert first["channel"] == "email"
    assert first["to"] == "person1@example.com"
    assert first["content"] == dict(message(1).content)
    assert first["metadata"] == {"journey_id": "cart", "step_id": "copy_a", "profile_id": "p1"}
    assert datetime.fromisoformat(str(first["sent_at"])) == receipt.accepted_at
    assert second["channel"] == "sms"
    assert receipt.provider_message_id == "console-cart:p1:copy_a:1"


async def test_keeps_lines_already_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sends.jsonl"
    for i in range(2):  # two connector lifetimes, e.g. two worker restarts
        connector = ConsoleConnector(path)
        await connector.send(message(i))
        await connector.aclose()
    assert [line["send_key"] for line in read_lines(path)] == [
        "cart:p0:copy_a:1",
        "cart:p1:copy_a:1",
    ]


async def test_200_concurrent_sends_give_200_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "sends.jsonl"
    connector = ConsoleConnector(path)
    receipts = await asyncio.gather(*(connector.send(message(i)) for i in range(200)))
    await connector.aclose()

    lines = read_lines(path)
    assert len(lines) == 200
    assert {line["send_key"] for line in lines} == {f"cart:p{i}:copy_a:1" for i in range(200)}
    assert len({r.provider_message_id for r in receipts}) == 200


def test_sends_from_several_threads_and_event_loops_give_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "sends.jsonl"
    connector = ConsoleConnector(path)

    def worker(offset: int) -> None:
        async def run() -> None:
            await asyncio.gather(*(connector.send(message(offset + i)) for i in range(50)))

        asyncio.run(run())

    threads = [threading.Thread(target=worker, args=(n * 50,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    asyncio.run(connector.aclose())

    lines = read_lines(path)
    assert len(lines) == 200
    assert len({line["send_key"] for line in lines}) == 200


async def test_without_a_path_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    connector = ConsoleConnector(None)
    await connector.send(message(7, channel="wecom"))
    await connector.aclose()
    out = capsys.readouterr().out
    (line,) = [json.loads(raw) for raw in out.splitlines() if raw.startswith("{")]
    assert line["channel"] == "wecom"
    assert line["send_key"] == "cart:p7:copy_a:1"


async def test_logs_the_send_without_address_or_content(tmp_path: Path) -> None:
    connector = ConsoleConnector(tmp_path / "sends.jsonl")
    with capture_logs() as logs:
        await connector.send(message(3))
    await connector.aclose()

    assert [entry["event"] for entry in logs] == ["message_sent"]
    assert logs[0]["channel"] == "email"
    assert logs[0]["send_key"] == "cart:p3:copy_a:1"
    logged = repr(logs)
    assert "person3@example.com" not in logged
    assert "购物车" not in logged
