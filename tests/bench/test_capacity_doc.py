"""docs/capacity.md shows what ``bench.capacity plan`` prints from the committed costs.

Each block of the page between ``<!-- python -m bench.capacity plan ARGS -->`` and ``<!-- end of
plan -->`` must be exactly that command's output, so the page cannot drift from the measured
costs or from the model."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bench.capacity import main

BLOCK = re.compile(
    r"<!-- python -m bench\.capacity plan (?P<args>[^>]*?) -->\n(?P<shown>.*?)<!-- end of plan -->",
    re.DOTALL,
)


def test_every_plan_on_the_page_is_what_the_command_prints(
    repo_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (repo_root / "docs" / "capacity.md").read_text(encoding="utf-8")
    blocks = list(BLOCK.finditer(page))
    assert blocks, "docs/capacity.md shows no plan"
    monkeypatch.chdir(repo_root)  # the commands name journey files relative to the checkout
    for block in blocks:
        main(["plan", *shlex.split(block["args"])])
        printed = capsys.readouterr().out
        assert block["shown"] == printed, f"re-run: python -m bench.capacity plan {block['args']}"
