"""`journey import events`: every line checked first; one bad line and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.importers.errors import ImportProblems
from engine.importers.events_jsonl import import_events
from engine.store import Store
from engine.store.tables import events

HOSTILE = "Robert'); DROP TABLE events;-- 张三 🎉 " + "x" * 10_000


def _write(path: Path, rows: list[object]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _event(event_id: str, **extra: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "profile_id": "p1",
        "name": "order_paid",
        "occurred_at": "2026-01-05T10:00:00+08:00",
        "properties": {"amount": 99.5, "note": HOSTILE},
        **extra,
    }


async def _count(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(events))).scalar_one())


async def test_import_is_idempotent_and_keeps_values(empty_store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [_event("e1"), "", _event("e2"), _event("e1")])
    report = await import_events(empty_store, path)
    assert (report.lines, report.new, report.duplicates) == (3, 2, 1)
    again = await import_events(empty_store, path)
    assert (again.new, again.duplicates) == (0, 3)
    [stored, _] = await empty_store.events_for("p1")
    assert stored.properties == {"amount": 99.5, "note": HOSTILE}
    assert stored.occurred_at.isoformat() == "2026-01-05T02:00:00+00:00"


async def test_one_bad_line_and_nothing_is_written(empty_store: Store, tmp_path: Path) -> None:
    rows: list[object] = [
        _event("ok"),
        "{not json",
        _event("naive", occurred_at="2026-01-05T10:00:00"),
        _event("typed", profile_id=12),
        _event("extra", surprise=1),
        _event("nan", properties={"amount": float("nan")}),
        _event("nul", properties={"x": "a\u0000b"}),
        [1, 2],
    ]
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ImportProblems) as caught:
        await import_events(empty_store, path)
    lines = sorted({int(p.split(":")[1]) for p in caught.value.problems})
    assert lines == [2, 3, 4, 5, 6, 7, 8]
    assert all(p.startswith(f"{path}:") for p in caught.value.problems)
    assert await _count(empty_store) == 0
