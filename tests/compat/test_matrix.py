"""The client compatibility matrix against kbroker, compared with compat/expected-kbroker.json.

Runs compat/run_matrix.py --broker kbroker (which installs the clients first, from a fresh clone)
and fails if a scenario expected to pass fails, or if one expected to fail passes: each expected
failure has a one-line reason in compat/FINDINGS.md, and the list shrinks as features land.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = ROOT / "compat" / "expected-kbroker.json"
FINDINGS = ROOT / "compat" / "FINDINGS.md"


def load_expected() -> dict[str, set[str]]:
    data = json.loads(EXPECTED.read_text())
    return {c: set(s) for c, s in data["expected_pass"].items()}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("matrix")
    subprocess.run([sys.executable, str(ROOT / "compat" / "run_matrix.py"), "--broker", "kbroker",
                    "--out-dir", str(out)], check=True, cwd=ROOT, timeout=1500)
    return json.loads((out / "matrix.json").read_text())


@pytest.mark.timeout(1800)
def test_matrix_matches_expectations(matrix: dict) -> None:
    expected = load_expected()
    results = matrix["results"]["kbroker"]
    unexpected_failures, unexpected_passes = [], []
    for client, per in results.items():
        for scenario, r in per.items():
            if r["status"] == "unsupported":
                continue
            want = scenario in expected.get(client, set())
            if want and r["status"] != "pass":
                unexpected_failures.append(f"{client}/{scenario}: {r['status']} {r.get('error') or ''}"[:300])
            if not want and r["status"] == "pass":
                unexpected_passes.append(f"{client}/{scenario}")
    msg = []
    if unexpected_failures:
        msg.append("expected to pass on kbroker but did not:\n  " + "\n  ".join(unexpected_failures))
    if unexpected_passes:
        msg.append("now passing on kbroker: add to compat/expected-kbroker.json and drop from "
                   "compat/FINDINGS.md:\n  " + "\n  ".join(unexpected_passes))
    assert not msg, "\n".join(msg)


def test_every_expected_failure_has_a_reason() -> None:
    """Each (client, scenario) not expected to pass is covered by a line in FINDINGS.md."""
    sys.path.insert(0, str(ROOT / "compat"))
    try:
        from run_matrix import CLIENTS, SCENARIOS
    finally:
        sys.path.pop(0)
    expected = load_expected()
    text = FINDINGS.read_text()
    blanket = re.search(r"^- \*\*all\*\* / \*\*all\*\*: .+", text, re.M)
    missing = []
    for c in CLIENTS:
        for s in SCENARIOS:
            if s in expected.get(c, set()) or blanket:
                continue
            if not re.search(rf"^- (\*\*all\*\*|{re.escape(c)}) / ({re.escape(s)}|\*\*all\*\*): .+", text, re.M):
                missing.append(f"{c}/{s}")
    assert not missing, f"no reason in compat/FINDINGS.md for: {missing}"
