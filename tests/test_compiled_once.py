"""The sandbox compiles a workflow module once, not once per run, and still isolates runs."""

from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from engine.compiled_once import compilations
from engine.worker import SANDBOX

pytestmark = pytest.mark.timeout(60)

MODULE = """
from temporalio import workflow

RUNS: list[str] = []  # module state: each run must see only its own


@workflow.defn(name="CountsRuns")
class CountsRuns:
    @workflow.run
    async def run(self) -> int:
        RUNS.append(workflow.info().workflow_id)
        return len(RUNS)
"""


async def test_runs_of_a_workflow_without_bytecode_share_its_compilation_not_its_state(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a checkout with PYTHONDONTWRITEBYTECODE: no __pycache__, only the source.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    name = f"counts_runs_{uuid.uuid4().hex[:8]}"
    source = tmp_path / f"{name}.py"
    source.write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    workflow_class = importlib.import_module(name).CountsRuns
    client = time_skipping_env.client
    queue = f"compiled-once-{uuid.uuid4().hex[:6]}"

    async with Worker(
        client, task_queue=queue, workflows=[workflow_class], workflow_runner=SANDBOX
    ):
        counts = [
            await client.execute_workflow(
                "CountsRuns", id=f"{queue}-{n}", task_queue=queue, result_type=int
            )
            for n in range(3)
        ]

    assert counts == [1, 1, 1]  # every run imported the module afresh
    # The worker's check of the workflow and the three runs: one compilation.
    assert compilations(str(source)) == 1
    assert not (tmp_path / "__pycache__").exists()
