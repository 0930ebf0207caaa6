"""`SegmentEntryWorkflow`: one scheduled evaluation of a segment, entering its members in pages.

A Temporal Schedule per segment-entry journey starts it (`services.schedules`). The evaluation time
is fixed by the first run (``workflow.now()``, i.e. when the schedule fired) and carried through
continue-as-new, so every page of one evaluation sees the same "now". Each activity call enters
up to a few pages of members in id order and returns where it stopped; the workflow then continues
as new from there, so its history stays a handful of events however large the segment.

No I/O here: the activity (``enter_segment_page``,
`engine.services.schedules.SegmentEntryActivities`) reads the store and calls the Enroller.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.dsl.segments import Segment
    from engine.dsl.tiers import Tiers

PAGE_SIZE = 500


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SegmentEntryInput(_Message):
    """What a schedule passes; the later fields are carried between runs of one evaluation."""

    journey_id: str
    segment: Segment
    rules: Tiers = Field(default_factory=Tiers)
    page_size: int = Field(PAGE_SIZE, ge=1, le=10_000)
    evaluated_at: datetime | None = None
    version: int | None = None
    """The journey version entered, fixed by the first page (a redeploy mid-evaluation does not
    split one evaluation across versions)."""
    after: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)


class EnterPageInput(_Message):
    journey_id: str
    version: int | None
    segment: Segment
    rules: Tiers
    now: datetime
    after: str | None
    page_size: int


class EnterPageResult(_Message):
    version: int | None
    """None when the journey is not deployed (nothing entered)."""
    after: str | None
    done: bool
    counts: dict[str, int] = Field(default_factory=dict)
    """Enrollment outcomes (started, live, reentry_blocked, missing) and ``already_entered``
    (entered by this evaluation before, e.g. by an attempt that crashed)."""


@workflow.defn(name="SegmentEntryWorkflow")
class SegmentEntryWorkflow:
    @workflow.run
    async def run(self, input: SegmentEntryInput) -> dict[str, int]:
        now = input.evaluated_at or workflow.now()
        workflow.set_current_details(
            f"entering segment {input.segment.id} into {input.journey_id} "
            f"as of {now.isoformat()}, after {input.after or 'the start'}"
        )
        result = await workflow.execute_activity(
            "enter_segment_page",
            EnterPageInput(
                journey_id=input.journey_id,
                version=input.version,
                segment=input.segment,
                rules=input.rules,
                now=now,
                after=input.after,
                page_size=input.page_size,
            ),
            result_type=EnterPageResult,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        counts = dict(Counter(input.counts) + Counter(result.counts))
        if result.done:
            return counts
        workflow.continue_as_new(
            input.model_copy(
                update={
                    "evaluated_at": now,
                    "version": result.version,
                    "after": result.after,
                    "counts": counts,
                }
            )
        )
