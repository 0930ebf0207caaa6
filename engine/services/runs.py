"""An operator's view of runs: ``journey runs`` lists a journey's runs through Temporal
visibility; ``journey inspect`` shows one person's runs (the live state query, the path taken,
the ledger) and the send decisions made for them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from engine.domain import Enrollment
from engine.services.why import why
from engine.store import Store
from engine.temporal import JOURNEY_STEP, PROFILE_ID, workflow_id
from engine.workflow.messages import RunState

STATUSES = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "canceled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
    "continued_as_new": "ContinuedAsNew",
}
"""``--status`` values and the visibility ``ExecutionStatus`` each stands for."""


class RunsError(ValueError):
    """Bad input to ``journey runs``; the message says what is allowed."""


@dataclass(frozen=True)
class RunRow:
    workflow_id: str
    profile_id: str | None
    step: str | None
    """Where the run last rested (`JourneyStep`); None before its first wait (a journey that
    begins with a wait shows it from the run's start)."""
    status: str
    started_at: datetime | None


def _literal(name: str, value: str) -> str:
    if "'" in value or "\\" in value:
        raise RunsError(f"{name} {value!r}: quotes and backslashes are not allowed")
    return f"'{value}'"


def visibility_query(journey_id: str, step: str | None = None, status: str | None = None) -> str:
    """The list filter: ``JourneyId = 'x' [AND JourneyStep = 's'] [AND ExecutionStatus = ...]``."""
    parts = [f"JourneyId = {_literal('journey', journey_id)}"]
    if step is not None:
        parts.append(f"JourneyStep = {_literal('step', step)}")
    if status is not None:
        if status.lower() not in STATUSES:
            raise RunsError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
        parts.append(f"ExecutionStatus = '{STATUSES[status.lower()]}'")
    return " AND ".join(parts)


async def list_runs(
    client: Client,
    journey_id: str,
    *,
    step: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[RunRow]:
    """A journey's runs (every version), newest first, as Temporal visibility has them."""
    rows = []
    async for execution in client.list_workflows(
        visibility_query(journey_id, step, status), limit=limit
    ):
        attributes = execution.typed_search_attributes
        state = execution.status or WorkflowExecutionStatus.RUNNING
        rows.append(
            RunRow(
                workflow_id=execution.id,
                profile_id=attributes.get(PROFILE_ID),
                step=attributes.get(JOURNEY_STEP),
                status=state.name.lower(),
                started_at=execution.start_time,
            )
        )
    return rows


def format_runs(rows: list[RunRow]) -> list[str]:
    lines = [f"{'workflow id':<44}{'step':<16}{'status':<12}started (UTC)"]
    for row in rows:
        started = f"{row.started_at:%Y-%m-%d %H:%M:%S}" if row.started_at else "-"
        lines.append(f"{row.workflow_id:<44}{row.step or '-':<16}{row.status:<12}{started}")
    return lines


async def ledger_summary(store: Store, journey_id: str) -> str:
    """What the store's ledger counts for the journey, to set against visibility."""
    counts = Counter(e.status for e in await store.enrollments(journey_id))
    if not counts:
        return f"ledger: no runs of {journey_id}"
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"ledger: {shown}"


@dataclass(frozen=True)
class InspectedRun:
    enrollment: Enrollment
    state: RunState | None
    """The live `state` query's answer; None when the run could not be asked."""
    unanswered: str | None = None
    """Why the run was not asked or did not answer."""


@dataclass(frozen=True)
class Inspection:
    profile_id: str
    runs: list[InspectedRun]
    decisions: list[str]
    """`journey why`'s lines: every send attempt and run ending, oldest first."""


async def _ask(client: Client, run: Enrollment) -> InspectedRun:
    if run.status != "active":
        return InspectedRun(run, None, "ended: the ledger has its path")
    handle = client.get_workflow_handle(workflow_id(run.journey_id, run.profile_id))
    try:
        state: RunState = await handle.query("state", result_type=RunState)
    except RPCError as exc:
        return InspectedRun(run, None, f"no answer from Temporal: {exc.message}")
    return InspectedRun(run, state)


async def inspect(
    client: Client, store: Store, profile_id: str, journey_id: str | None = None
) -> Inspection:
    """A person's runs (each journey's, or one), the live state of those in flight, and the
    send decisions made for them."""
    runs = await store.person_enrollments(profile_id, journey_id)
    return Inspection(
        profile_id,
        [await _ask(client, run) for run in runs],
        await why(store, profile_id, journey_id),
    )


def format_inspection(inspection: Inspection) -> list[str]:
    if not inspection.runs:
        return [f"{inspection.profile_id}: no runs recorded"]
    lines = []
    for run in inspection.runs:
        ledger = run.enrollment
        lines.append(
            f"{ledger.journey_id} v{ledger.journey_version} "
            f"(entered {ledger.entered_at:%Y-%m-%d %H:%M:%S}): {ledger.status}"
        )
        state = run.state
        if state is not None:
            where = f"  now at {state.step or '-'}: {state.status}"
            if state.waiting_for:
                where += f", waiting for {state.waiting_for}"
            if state.until:
                where += f" until {state.until:%Y-%m-%d %H:%M:%S}"
            if state.paused:
                where += " (journey paused)"
            lines.append(where)
        path = state.path if state is not None else list(ledger.path)
        variants = state.variants if state is not None else ledger.variants
        lines.append(f"  path: {' > '.join(path) or '-'}")
        if variants:
            lines.append("  variants: " + ", ".join(f"{k}={v}" for k, v in variants.items()))
        if ledger.exit_reason or ledger.exit_step:
            lines.append(f"  ended at {ledger.exit_step or '-'}: {ledger.exit_reason or '-'}")
        if run.unanswered and state is None and ledger.status == "active":
            lines.append(f"  state: {run.unanswered}")
    lines.append("send decisions:")
    lines += [f"  {line}" for line in inspection.decisions] or ["  none recorded"]
    return lines
