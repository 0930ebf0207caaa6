"""Recorded histories replay on the current interpreter: a non-deterministic change fails CI.

Recorded by ``python -m tests.workflow.record_histories``; a change to running logic must be
gated by ``workflow.patched(...)`` so that these still replay.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from engine.temporal import DATA_CONVERTER
from engine.worker import SANDBOX
from engine.workflow.journey import JourneyWorkflow
from tests.workflow.altered import SkipsWaits

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json*"))
"""``.json``, or ``.json.gz`` for the long ones (a run that continued as new)."""


def name(path: Path) -> str:
    return path.name.split(".")[0]


def history(path: Path) -> WorkflowHistory:
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open() as f:
        return WorkflowHistory.from_json(f"journey:recorded:{name(path)}", f.read())


def test_there_are_recorded_histories() -> None:
    recorded = {name(p) for p in HISTORIES}
    assert recorded >= {"timeout", "vip", "converts", "evicted", "looped-first", "looped-last"}


@pytest.mark.parametrize("path", HISTORIES, ids=name)
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
