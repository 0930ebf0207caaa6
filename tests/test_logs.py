"""Logging as configured by the `journey` CLI: JSON lines or console lines on stderr, with the
context keys, and never a raw address or phone number."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from connectors.base import fingerprint
from engine.logs import configure_logging
from engine.settings import LogSettings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


@pytest.mark.timeout(10)
def test_json_lines_carry_time_level_event_and_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(log_format="json"))

    structlog.get_logger("engine.test").bind(
        journey_id="cart-recovery", profile_id="p00042", send_key="e1:copy_a:1"
    ).info("delivery_recorded", status="sent")

    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is the command's output
    [line] = lines(captured.err)
    assert line["event"] == "delivery_recorded" and line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert (line["journey_id"], line["profile_id"], line["send_key"]) == (
        "cart-recovery",
        "p00042",
        "e1:copy_a:1",
    )


@pytest.mark.timeout(10)
def test_addresses_and_phone_numbers_never_reach_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(LogSettings(log_format="json"))

    structlog.get_logger("engine.test").warning(
        "provider_refused", to="li.lei@example.com", detail={"phone": "+8613800138000"}
    )
    logging.getLogger("some.library").warning("could not reach 13800138000 or li.lei@example.com")
    logging.getLogger("uvicorn.error").warning("GET /u/cDAwMDQyAHNtcw.c2lnbmF0dXJl failed")

    err = capsys.readouterr().err
    assert "li.lei@example.com" not in err and "13800138000" not in err
    first, second, third = lines(err)
    assert third["event"] == "GET /u/*** failed"  # an unsubscribe link's token
    assert first["to"] == fingerprint("li.lei@example.com")
    assert first["detail"]["phone"] == fingerprint("+8613800138000")
    assert second["logger"] == "some.library" and second["level"] == "warning"
    assert fingerprint("13800138000") in second["event"]


@pytest.mark.timeout(10)
def test_the_level_and_the_console_format_are_chosen_by_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(LogSettings(log_format="console", log_level="warning"))

    log = structlog.get_logger("engine.test")
    log.info("routine_work")
    log.warning("send_failed", channel="sms")

    err = capsys.readouterr().err
    assert "routine_work" not in err
    [line] = err.splitlines()
    assert "send_failed" in line and "channel=sms" in line and not line.startswith("{")


@pytest.mark.timeout(10)
def test_json_is_the_default_off_a_terminal_and_settings_read_any_case(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEY_LOG_LEVEL", "WARNING")
    configure_logging(LogSettings())

    structlog.get_logger("engine.test").info("routine_work")
    structlog.get_logger("engine.test").error("worker_stopped")

    [line] = lines(capsys.readouterr().err)
    assert line["event"] == "worker_stopped"


@pytest.mark.timeout(10)
def test_with_a_log_file_the_terminal_shows_only_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """`journey demo` shows progress on the terminal; its log lines go to a file."""
    log_file = tmp_path / "home" / "demo.log"
    configure_logging(LogSettings(), file=log_file)

    log = structlog.get_logger("engine.test")
    log.info("delivery_recorded", status="sent")
    logging.getLogger("temporalio.core").warning("slow task")
    log.error("worker_failed", reason="boom")
    for handler in logging.getLogger().handlers:
        handler.flush()

    written = lines(log_file.read_text(encoding="utf-8"))
    events = [line["event"] for line in written]
    assert events == ["delivery_recorded", "slow task", "worker_failed"]
    err = capsys.readouterr().err
    assert "worker_failed" in err
    assert "delivery_recorded" not in err and "slow task" not in err


@pytest.mark.timeout(10)
def test_a_logged_exception_carries_no_frame_locals(capsys: pytest.CaptureFixture[str]) -> None:
    """A traceback's locals are unmasked personal data (and rendering them failed inside the
    workflow sandbox, turning a workflow task failure's warning into a logging error)."""
    configure_logging(LogSettings(log_format="json"))

    def send(address: str) -> None:
        raise RuntimeError("provider refused")

    try:
        send("li@example.com")
    except RuntimeError:
        structlog.get_logger("engine.test").exception("send_failed")

    [line] = lines(capsys.readouterr().err)
    assert line["exception"][0]["exc_value"] == "provider refused"
    assert "li@example.com" not in json.dumps(line)
