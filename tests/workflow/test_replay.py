"""Recorded histories replay on the current interpreter: a non-deterministic change fails CI.

Recorded by ``python -m tests.workflow.record_histories``; a change to running logic must be
gated by ``workflow.patched(...)`` so that these still replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from engine.temporal import DATA_CONVERTER
from engine.worker import SANDBOX
from engine.workflow.journey import JourneyWorkflow
from tests.workflow.altered import SkipsWaits

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"journey:recorded:{path.stem}", path.read_text("utf-8"))


def test_there_are_recorded_histories() -> None:
    assert {p.stem for p in HISTORIES} >= {"timeout", "vip", "converts", "evicted"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays_on_the_current_interpreter(path: Path) -> None:
    replayer = Replayer(
        workflows=[JourneyWorkflow], data_converter=DATA_CONVERTER, workflow_runner=SANDBOX
    )
    await replayer.replay_workflow(history(path))


async def test_an_unpatched_change_to_running_logic_fails_replay() -> None:
    replayer = Replayer(
        workflows=[SkipsWaits], data_converter=DATA_CONVERTER, workflow_runner=SANDBOX
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(history(HISTORIES[0]))
