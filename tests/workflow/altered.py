"""An interpreter with a non-deterministic change, to prove the replay test can fail."""

from __future__ import annotations

from temporalio import workflow

from engine.workflow.journey import JourneyWorkflow

with workflow.unsafe.imports_passed_through():
    from engine.dsl.models import Step, WaitStep
    from engine.workflow.messages import JourneyInput, RunResult


@workflow.defn(name="JourneyWorkflow")
class SkipsWaits(JourneyWorkflow):
    """The same workflow type, but a wait step no longer starts a timer."""

    @workflow.run
    async def run(self, input: JourneyInput) -> RunResult:
        return await super().run(input)

    async def _execute(self, step: Step) -> str | None:
        if isinstance(step, WaitStep):
            return step.next or self._journey.following(step.id)
        return await super()._execute(step)
