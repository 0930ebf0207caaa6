"""Baselines written by hand as workflows: the cart-recovery path of bench/runtime.py, and the
morning wave of bench/scale.py (wait until a time of day, send, write the ledger)."""

from __future__ import annotations

from datetime import time, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from zoneinfo import ZoneInfo

    from engine.dsl.models import WaitStep, WaitUntil
    from engine.localtime import next_wall_time
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
        await _finish(input)


@workflow.defn(name="HandWrittenWave")
class HandWrittenWave:
    """The wave's path by hand: sleep until the time of day of the pinned journey's first step
    (``wait: {until}``) on the person's clock, one send through the same activity with the
    journey's caps and tags, then the ledger write. No interpreter, no operator view."""

    @workflow.run
    async def run(self, input: JourneyInput) -> None:
        first = input.journey.steps[0]
        assert isinstance(first, WaitStep) and isinstance(first.wait, WaitUntil)
        now = workflow.now()
        wake = next_wall_time(now, time(*first.wait.hour_minute), ZoneInfo(input.timezone))
        await workflow.sleep(wake - now)
        at = workflow.now()
        await workflow.execute_activity(
            "send",
            SendInput(
                send_key=f"{input.enrollment_id}:send:1",
                journey_id=input.journey.id,
                version=input.version,
                profile_id=input.profile_id,
                step_id="send",
                channel="webhook",
                template="scale_morning",
                category="marketing",
                priority=input.journey.priority,
                caps=input.journey.caps,
                at=at,
                timezone=input.timezone,
                tags=input.journey.tags,
                first_attempt_at=at,
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
        await _finish(input)


async def _finish(input: JourneyInput) -> None:
    """The ledger write that ends a run, as the interpreter's ``finish_run``."""
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
        start_to_close_timeout=timedelta(seconds=30),
    )
