"""The checked-in ``protocol/messages/`` is exactly what the generator writes from the specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MESSAGES = REPO / "protocol" / "messages"


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}


def test_regeneration_matches_checked_in_modules(tmp_path):
    out = tmp_path / "messages"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "generate_protocol.py"), str(out)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    fresh, committed = _tree(out), _tree(MESSAGES)
    assert sorted(fresh) == sorted(committed), "generated file set differs: run scripts/generate_protocol.py (--prune if an API was removed)"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"regenerate protocol/messages (scripts/generate_protocol.py): {stale[:10]}"


def test_generated_code_does_not_carry_spec_prose():
    # Every "about" text in the specs is a sentence; spot-check a few distinctive ones.
    text = (MESSAGES / "produce.py").read_text(encoding="utf-8") + (MESSAGES / "fetch.py").read_text(encoding="utf-8")
    for prose in ("The transactional ID", "acknowledgments the producer requires", "Licensed to the Apache"):
        assert prose not in text
    for path in MESSAGES.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "exec(" not in source and "eval(" not in source


def test_spec_comments_are_stripped_but_not_inside_strings():
    from kbroker_protocol.interpreter import load_spec_text

    text = (
        "// Licensed to the Apache Software Foundation\n"
        '{ "name": "X", // a trailing comment\n'
        '  "about": "see http://kafka.apache.org/ and a \\" quote // kept",\n'
        "    // an indented comment line\n"
        '  "validVersions": "0-1" }\n'
    )
    assert load_spec_text(text) == {
        "name": "X",
        "about": 'see http://kafka.apache.org/ and a " quote // kept',
        "validVersions": "0-1",
    }
