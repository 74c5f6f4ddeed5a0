"""Each API module's docstring names the versions it serves as its registration does: a note such
as ``EndTxn (key 26), v0-5`` or ``WriteShareGroupState (85, v0-1)`` must match the module's row
of kbroker.api.HANDLER_TABLE (checked against the table, itself checked against the modules by
test_api_table.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kbroker.api import HANDLER_TABLE

API_DIR = Path(__file__).resolve().parents[2] / "kbroker" / "api"
# "(key 26), v0-5", "(key 90, v0-1)", "(85, v0-1)", "(38, v1-3)", "(key 61), v0", "served v3-13"
NOTE = re.compile(r"\((?:key )?(\d+)(?:\),|,) (?:served )?v(\d+)(?:-(\d+))?\b")


def _modules() -> list[str]:
    return sorted({row[1] for row in HANDLER_TABLE})


def _notes(module: str) -> list[tuple[int, int, int]]:
    doc = ast.get_docstring(ast.parse((API_DIR / f"{module}.py").read_text(encoding="utf-8"))) or ""
    return [(int(k), int(lo), int(hi or lo)) for k, lo, hi in NOTE.findall(" ".join(doc.split()))]


@pytest.mark.parametrize("module", _modules())
def test_docstring_versions_match_the_registration(module: str) -> None:
    ranges = {(key, low, high) for key, name, low, high, _listeners in HANDLER_TABLE if name == module}
    keys = {key for key, _low, _high in ranges}
    for key, low, high in _notes(module):
        if key in keys:
            assert (key, low, high) in ranges, f"{module}: docstring says key {key} v{low}-{high}, registered {ranges}"


def test_the_notes_are_found() -> None:
    """The pattern reads the notes at all: most API modules carry one."""
    noted = [m for m in _modules() if any(key in {r[0] for r in HANDLER_TABLE if r[1] == m} for key, _, _ in _notes(m))]
    assert len(noted) >= 50, noted
