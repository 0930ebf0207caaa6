"""The funnel of a journey: who entered, which steps they reached, what was sent, who converted.

Conversion is measured from the event store, not from the runs: a holdout person whose run ended
at once still converts if they buy within the goal window — that is what makes holdouts honest.
A goal event counts by its own time (``Goal.reached``), the rule a live run ends ``converted``
by, so every run the ledger calls converted is counted here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.domain import Enrollment
from engine.dsl.models import Journey
from engine.stats import difference, wilson
from engine.store import Store


@dataclass(frozen=True)
class StepRow:
    step: str
    reached: int
    sent: int
    suppressed: int
    failed: int
    unknown: int
    """Sends that may or may not have reached the person (an attempt whose outcome was lost)."""
    exited: int
    converted: int
    """People who reached this step and converted within the goal window."""


@dataclass(frozen=True)
class Funnel:
    journey_id: str
    entered: int
    active: int
    converted: int
    steps: list[StepRow]
    variants: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    """Split step -> variant -> (people, converted)."""
    endings: dict[tuple[str, str | None], int] = field(default_factory=dict)
    """(status, exit reason) -> runs that ended so, most frequent first (ties by name)."""


async def converted_runs(
    store: Store, journey: Journey, enrollments: Sequence[Enrollment]
) -> set[str]:
    """Ids of the enrollments whose person had a goal event in the goal window (by the event's
    own time), whether or not the run was still live when it came."""
    goal = journey.goal
    if goal is None:
        return set()
    times = await store.goal_events(goal.event, [e.profile_id for e in enrollments])
    return {
        e.id
        for e in enrollments
        if any(goal.reached(e.entered_at, t) for t in times.get(e.profile_id, []))
    }


async def funnel(store: Store, journey: Journey) -> Funnel:
    enrollments = await store.enrollments(journey.id)
    converted_ids = await converted_runs(store, journey, enrollments)
    reached: Counter[str] = Counter()
    exited: Counter[str] = Counter()
    conv_at: Counter[str] = Counter()
    variants: dict[str, dict[str, list[int]]] = {}
    for e in enrollments:
        for step in dict.fromkeys(e.path):
            reached[step] += 1
            conv_at[step] += e.id in converted_ids
        if e.status != "active" and e.exit_step:
            exited[e.exit_step] += 1
        for step, variant in e.variants.items():
            cell = variants.setdefault(step, {}).setdefault(variant, [0, 0])
            cell[0] += 1
            cell[1] += e.id in converted_ids
    endings = Counter((e.status, e.exit_reason) for e in enrollments if e.status != "active")
    sends = Counter((d.step_id, d.status) for d in await store.deliveries(journey_id=journey.id))
    rows = [
        StepRow(
            step=s.id,
            reached=reached[s.id],
            sent=sends[(s.id, "sent")],
            suppressed=sends[(s.id, "suppressed")] + sends[(s.id, "expired")],
            failed=sends[(s.id, "failed")],
            unknown=sends[(s.id, "unknown")],
            exited=exited[s.id],
            converted=conv_at[s.id],
        )
        for s in journey.steps
    ]
    return Funnel(
        journey_id=journey.id,
        entered=len(enrollments),
        active=sum(e.status == "active" for e in enrollments),
        converted=len(converted_ids),
        steps=rows,
        variants={k: {v: (c[0], c[1]) for v, c in d.items()} for k, d in variants.items()},
        endings=dict(sorted(endings.items(), key=lambda e: (-e[1], e[0][0], e[0][1] or ""))),
    )


def format_funnel(f: Funnel, name: str = "") -> str:
    """A plain-text table a marketer can read in a terminal."""
    rate = f"{100 * f.converted / f.entered:.1f}%" if f.entered else "-"
    lines = [
        f"{f.journey_id}{' — ' + name if name else ''}: entered {f.entered}, "
        f"converted {f.converted} ({rate}), still active {f.active}",
        f"  {'step':<16}{'reached':>9}{'sent':>7}{'suppr.':>8}{'failed':>8}{'unknown':>8}"
        f"{'exited':>8}{'conv.':>7}",
    ]
    for r in f.steps:
        lines.append(
            f"  {r.step:<16}{r.reached:>9}{r.sent:>7}{r.suppressed:>8}{r.failed:>8}"
            f"{r.unknown:>8}{r.exited:>8}{r.converted:>7}"
        )
    if f.endings:
        ended = (
            f"{status}{' — ' + reason if reason else ''} {count}"
            for (status, reason), count in f.endings.items()
        )
        lines.append("  ended: " + "; ".join(ended))
    for step, cells in f.variants.items():
        lines.append(f"  split {step} (conversion, 95% confidence interval):")
        ordered = sorted(cells.items())
        for variant, (n, converted) in ordered:
            low, high = wilson(converted, n)
            lines.append(
                f"    {variant:<12}{n:>6} people {converted:>6} converted "
                f"{100 * converted / n:>6.1f}%  [{100 * low:.1f}%, {100 * high:.1f}%]"
            )
        # Compare with the holdout when there is one (the effect of messaging at all), else
        # with the first variant.
        label = "holdout" if "holdout" in cells else ordered[0][0]
        base_people, base_converted = cells[label]
        for variant, (n, converted) in ordered:
            if variant == label:
                continue
            delta, low, high = difference((base_converted, base_people), (converted, n))
            verdict = "better" if low > 0 else "worse" if high < 0 else "no clear difference"
            lines.append(
                f"    {variant} vs {label}: {100 * delta:+.1f} pts "
                f"[{100 * low:+.1f}, {100 * high:+.1f}] — {verdict}"
            )
    return "\n".join(lines)
