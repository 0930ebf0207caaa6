"""The baseline of bench/runtime.py: the cart-recovery path written by hand as a workflow."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.workflow.messages import BranchInput, FinishInput, JourneyInput, SendInput


@workflow.defn(name="HandWrittenCartRecovery")
class HandWrittenCartRecovery:
    """What an engineer would write by hand for the same path: no interpreter, no operator view."""

    @workflow.run
    async def run(self, input: JourneyInput) -> None:
        local = timedelta(seconds=30)
        await workflow.sleep(timedelta(hours=1) / input.time_scale)
        await workflow.execute_local_activity(
            "evaluate_branch",
            BranchInput(profile_id=input.profile_id, conditions=[]),
            start_to_close_timeout=local,
        )
        for step, template, pause in (
            ("copy_a", "cart_a", True),
            ("nudge", "cart_last_call", False),
        ):
            await workflow.execute_activity(
                "send",
                SendInput(
                    send_key=f"{input.enrollment_id}:{step}",
                    journey_id=input.journey.id,
                    version=input.version,
                    profile_id=input.profile_id,
                    step_id=step,
                    channel="console",
                    template=template,
                    category="marketing",
                    priority=input.journey.priority,
                    at=workflow.now(),
                    timezone=input.timezone,
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )
            if pause:
                await workflow.sleep(timedelta(days=2) / input.time_scale)
        await workflow.execute_local_activity(
            "finish_run",
            FinishInput(
                enrollment_id=input.enrollment_id,
                status="completed",
                exit_step="done",
                path=[],
                variants={},
                ended_at=workflow.now(),
            ),
            start_to_close_timeout=local,
        )
