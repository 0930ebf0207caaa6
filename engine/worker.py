"""Building a journey worker: the workflow, the activities and the sandbox settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine import compiled_once
from engine.settings import WORKFLOW_TASK_SLOTS
from engine.workflow.journey import JourneyWorkflow
from engine.workflow.segment_entry import SegmentEntryWorkflow


@dataclasses.dataclass(frozen=True)
class _Sandbox(SandboxedWorkflowRunner):
    """The SDK's sandbox, with each workflow module compiled once per process, not once per
    run (`engine.compiled_once`)."""

    def prepare_workflow(self, defn: workflow._Definition) -> None:
        compiled_once.install()  # every worker and replayer prepares its workflows first
        super().prepare_workflow(defn)


_DEFAULT = SandboxRestrictions.default
# Our models are pure and deterministic; passing them through avoids re-importing pydantic models
# in every sandboxed run (a large share of workflow-task CPU otherwise). ZoneInfo is proxied by
# default (its cache-clearing methods are not deterministic); the interpreter only constructs
# zones, whose rules are fixed for a given tzdata, so it is let through unproxied.
SANDBOX = _Sandbox(
    restrictions=dataclasses.replace(
        _DEFAULT,
        invalid_module_members=_DEFAULT.invalid_module_members.with_child_unrestricted(
            "zoneinfo", "ZoneInfo"
        ),
    ).with_passthrough_modules(
        "engine.dsl", "engine.domain", "engine.workflow.messages", "pydantic", "zoneinfo"
    )
)


def build_worker(
    client: Client,
    task_queue: str,
    activities: Sequence[Any],
    *,
    max_concurrent_activities: int = 100,
    workflow_task_pollers: int = 10,
    workflow_task_slots: int = WORKFLOW_TASK_SLOTS,
    workflow_runner: WorkflowRunner = SANDBOX,
    workflows: bool = True,
    remote_activities: bool = True,
    extra_workflows: Sequence[type] = (),
) -> Worker:
    """A worker for the journey and segment-entry workflows with ``activities``.

    ``workflow_runner``: the sandbox (the default) isolates each run's imports to catch
    non-deterministic workflow code; a rehearsal, which replays nothing, may run without it.
    ``workflows=False``: activities only (`journey worker --only activities`);
    ``remote_activities=False``: workflow tasks and their local activities only, no activity
    tasks (`journey worker --only workflows`: it would take sends it cannot run).
    ``extra_workflows``: more workflow classes on the same queue and activities (a benchmark's
    hand-written baseline next to the journeys, on the same worker).
    ``workflow_task_slots``: workflow tasks run at once. Fewer do not drain a wave faster: a
    task also waits on its local activities and on the server, and a run whose task cannot get a
    slot loses its sticky worker (a 4,000-person scale run, wave of 800: 100 slots drained it in
    19 s with a p99 task under 300 ms; 10 slots took 32 s, with 250 sticky timeouts)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[JourneyWorkflow, SegmentEntryWorkflow, *extra_workflows] if workflows else [],
        activities=list(activities),
        workflow_runner=workflow_runner,
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=workflow_task_slots,
        max_concurrent_workflow_task_polls=min(workflow_task_pollers, workflow_task_slots),
        no_remote_activities=not remote_activities,
    )
