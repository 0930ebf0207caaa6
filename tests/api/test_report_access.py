"""Which paths a report link can open: the report pages, nothing beside or below them."""

from __future__ import annotations

import pytest

from engine.api.report_access import report_target


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/reports", (True, None)),
        ("/reports/", (True, None)),
        ("/reports/cart-recovery", (True, "cart-recovery")),
        ("/reports/加购", (True, "加购")),
        ("/reports/a/b", (False, None)),
        ("/reportsx", (False, None)),
        ("/v1/events", (False, None)),
        ("/reports//x", (False, None)),
    ],
)
def test_a_link_opens_report_pages_only(path: str, target: tuple[bool, str | None]) -> None:
    assert report_target(path) == target
