"""``journey why``: for one person, every send attempt and why it went out or did not, and how
each of their runs ended and why."""

from __future__ import annotations

from datetime import datetime

from engine.domain import Delivery, Enrollment, EntryRefusal
from engine.store import Store

_MEANING = {
    "sent": "sent",
    "suppressed": "not sent",
    "deferred": "held",
    "expired": "not sent (held past its expiry)",
    "failed": "failed at the provider",
    "attempting": "being sent",
    "unknown": "outcome unknown (it may have reached the person; never sent again)",
}


def explain(delivery: Delivery) -> str:
    """One line: when, which journey step and channel, what happened and the rule or reason."""
    outcome = _MEANING.get(delivery.status, delivery.status)
    line = (
        f"{delivery.created_at:%Y-%m-%d %H:%M:%S} {delivery.journey_id}/{delivery.step_id} "
        f"{delivery.channel} ({delivery.template}): {outcome}"
    )
    if delivery.reason:
        line += f" — {delivery.reason}"
        if "count" in delivery.detail and "max" in delivery.detail:
            line += f" ({delivery.detail['count']} of {delivery.detail['max']} used)"
        if "budget" in delivery.detail:
            line += f" in the budget of {delivery.detail['budget']}"
    if "retry_at" in delivery.detail and delivery.status in ("deferred", "expired"):
        line += f"; frees at {delivery.detail['retry_at']}"
    if delivery.provider_message_id:
        line += f"; provider id {delivery.provider_message_id}"
    return line


def explain_ending(enrollment: Enrollment) -> str:
    """One line for a finished run: when, where it stopped, how it ended and why."""
    assert enrollment.ended_at is not None
    line = (
        f"{enrollment.ended_at:%Y-%m-%d %H:%M:%S} {enrollment.journey_id}/{enrollment.exit_step} "
        f"run ended: {enrollment.status}"
    )
    if enrollment.exit_reason:
        line += f" — {enrollment.exit_reason}"
    return line


def explain_refusal(refusal: EntryRefusal) -> str:
    """One line for an entry the journey's state refused."""
    state = refusal.reason.removeprefix("journey_")
    return f"{refusal.at:%Y-%m-%d %H:%M:%S} {refusal.journey_id}: not entered — journey {state}"


async def why(store: Store, profile_id: str, journey_id: str | None = None) -> list[str]:
    """The person's send attempts, run endings and refused entries in time order (UTC),
    optionally for one journey."""
    deliveries = await store.deliveries(profile_id=profile_id, journey_id=journey_id)
    runs = await store.person_enrollments(profile_id, journey_id)
    lines: list[tuple[datetime, str]] = [(d.created_at, explain(d)) for d in deliveries]
    lines += [(e.ended_at, explain_ending(e)) for e in runs if e.ended_at is not None]
    refusals = await store.entry_refusals(profile_id)
    lines += [(r.at, explain_refusal(r)) for r in refusals if journey_id in (None, r.journey_id)]
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]
