"""The report of deployed journeys: the latest version of each, measured by
``engine.analytics`` (funnel, conversions and revenue with last-touch attribution, experiments,
lift, the nine numbers, fatigue, channel effect).

Conversion is measured from the event store, not from the runs: a holdout person whose run ended
at once still converts if they buy within the goal window — that is what makes holdouts honest.
A goal event counts by its own time (``Goal.reached``), the rule a live run ends ``converted``
by, so every run the ledger calls converted is counted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from engine.analytics.model import Report
from engine.analytics.period import Period
from engine.analytics.report import build_report
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.store import Store


class UnknownJourney(LookupError):
    """Journey ids that were never deployed; the message lists the deployed ones."""

    def __init__(self, missing: Sequence[str], deployed: Sequence[str]) -> None:
        self.missing = list(missing)
        names = ", ".join(f"'{m}'" for m in missing)
        known = ", ".join(deployed) if deployed else "none (run `journey deploy`)"
        super().__init__(f"unknown journey {names}; deployed: {known}")


async def deployed_journeys(store: Store, journey_ids: Sequence[str] | None) -> list[Journey]:
    """The latest deployed version of each journey asked for (all when None or empty), in the
    order asked; UnknownJourney when any was never deployed."""
    versions = {v.journey_id: v for v in await store.latest_versions()}
    wanted = list(dict.fromkeys(journey_ids)) if journey_ids else sorted(versions)
    missing = [j for j in wanted if j not in versions]
    if missing:
        raise UnknownJourney(missing, sorted(versions))
    return [Journey.model_validate(versions[j].definition) for j in wanted]


async def journeys_report(
    store: Store,
    journey_ids: Sequence[str] | None,
    *,
    policy: Policy,
    tiers: Tiers,
    period: Period | None = None,
    sequential: bool = False,
    now: datetime | None = None,
) -> Report:
    journeys = await deployed_journeys(store, journey_ids)
    return await build_report(
        store,
        journeys,
        policy=policy,
        tiers=tiers,
        period=period,
        sequential=sequential,
        now=now,
    )
