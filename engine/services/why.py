"""``journey why``: for one person, every send attempt and why it went out or did not."""

from __future__ import annotations

from engine.domain import Delivery
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
    if "retry_at" in delivery.detail and delivery.status in ("deferred", "expired"):
        line += f"; frees at {delivery.detail['retry_at']}"
    if delivery.provider_message_id:
        line += f"; provider id {delivery.provider_message_id}"
    return line


async def why(store: Store, profile_id: str, journey_id: str | None = None) -> list[str]:
    """The person's send attempts in time order (UTC), optionally for one journey."""
    deliveries = await store.deliveries(profile_id=profile_id, journey_id=journey_id)
    return [explain(d) for d in sorted(deliveries, key=lambda d: d.created_at)]
