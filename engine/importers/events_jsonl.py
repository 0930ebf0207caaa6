"""Events from a JSONL file, one object per line::

    {"event_id": "e1", "profile_id": "p1", "name": "order_paid",
     "occurred_at": "2026-01-05T10:00:00+08:00", "properties": {"amount": 99}}

Every line is validated first; one bad line and nothing is written (each problem is reported as
``file:line: message``). Events go through `Store.record_events` (merged profile ids resolve to
their survivor; ids already stored are skipped) and are stored as history: they wake no journey.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from engine.domain import Event
from engine.importers.errors import ImportProblems
from engine.store import Store
from engine.store.tables import PROFILE_ID_MAX

BATCH = 1000
MAX_LINE = 1_000_000
_Text = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]


class EventLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_id: _Text
    profile_id: Annotated[
        str, StringConstraints(min_length=1, max_length=PROFILE_ID_MAX, pattern=r"^[^\x00]*$")
    ]
    name: _Text
    occurred_at: Annotated[AwareDatetime, Field(strict=False)]
    properties: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class EventsReport:
    lines: int
    new: int
    duplicates: int


def read_events(path: Path) -> list[Event]:
    """Every event of the file. Raises ImportProblems listing every bad line."""
    found: list[Event] = []
    problems: list[str] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ImportProblems([f"{path}: cannot read: {exc.strerror}"]) from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if len(line) > MAX_LINE:
                    problems.append(f"{path}:{number}: line longer than {MAX_LINE} characters")
                    continue
                try:
                    item = EventLine.model_validate(json.loads(line))
                except json.JSONDecodeError as exc:
                    problems.append(f"{path}:{number}: not JSON: {exc.msg} (column {exc.colno})")
                    continue
                except ValidationError as exc:
                    for error in exc.errors(include_url=False):
                        where = ".".join(str(p) for p in error["loc"]) or "line"
                        problems.append(f"{path}:{number}: {where}: {error['msg']}")
                    continue
                if _unstorable(item.properties):
                    problems.append(
                        f"{path}:{number}: properties: NaN, Infinity and NUL characters "
                        "cannot be stored"
                    )
                    continue
                found.append(
                    Event(
                        item.event_id,
                        item.profile_id,
                        item.name,
                        _aware(item.occurred_at),
                        dict(item.properties),
                    )
                )
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: not UTF-8 text (byte {exc.start})")
    if problems:
        raise ImportProblems(problems)
    return found


async def import_events(store: Store, path: Path) -> EventsReport:
    """Validate the whole file, then store its events. Raises ImportProblems (nothing stored)."""
    events = read_events(path)
    new = 0
    for start in range(0, len(events), BATCH):
        recorded = await store.record_events(events[start : start + BATCH])
        new += sum(1 for r in recorded if r.fresh)
    return EventsReport(len(events), new, len(events) - new)


def _aware(value: datetime) -> datetime:
    assert value.tzinfo is not None
    return value


def _unstorable(value: Any) -> bool:
    # PostgreSQL's jsonb holds neither \u0000 nor NaN / Infinity; refusing them here keeps
    # both backends alike.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False
