"""The report of the deployed journeys, as the CLI, the API and the demo ask for it.

``ReportSource`` holds what every report needs besides the store (the contact policy, for the
fatigue curve against the global cap, and the member tiers, for channel effect by tier) and
builds a ``Report`` of the latest version of each journey asked for (every journey by default)
with ``engine.analytics.report.build_report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.analytics.model import Report
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


@dataclass(frozen=True)
class ReportSource:
    store: Store
    policy: Policy
    tiers: Tiers

    async def __call__(
        self, journey_ids: Sequence[str] | None = None, *, now: datetime | None = None
    ) -> Report:
        journeys = await deployed_journeys(self.store, journey_ids)
        from engine.analytics.report import build_report

        report: Report = await build_report(
            self.store, journeys, policy=self.policy, tiers=self.tiers, now=now
        )
        return report


def write_report(path: Path, html: str) -> Path:
    """Write the page whole or not at all (a half-written report would open as a broken one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path.resolve()
