"""The client compatibility matrix against kbroker, compared with compat/expected-kbroker.json,
and its cluster column, compared with compat/expected-kbroker-cluster.json.

Runs compat/run_matrix.py --broker kbroker (which installs the clients first, from a fresh clone)
and fails if a scenario expected to pass fails, or if one expected to fail passes: each expected
failure has a one-line reason in compat/FINDINGS.md, and the list shrinks as features land.

The cluster column (three kbroker nodes, RF=3, min.insync.replicas=2) runs here with
run_matrix.CLUSTER_CI_SCENARIOS, every client (the scenarios a cluster changes something for, to
keep the suite's time down); `compat/run_matrix.py --broker cluster` runs all of them.

Each column runs with --batch: a client's program starts once for all its scenarios (a JVM start a
scenario was most of the Java clients' time), each scenario still within the per-scenario timeout.
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
EXPECTED_CLUSTER = ROOT / "compat" / "expected-kbroker-cluster.json"
EXPECTED_SASL = ROOT / "compat" / "expected-kbroker-sasl.json"
FINDINGS = ROOT / "compat" / "FINDINGS.md"


def load_expected(path: Path = EXPECTED) -> dict[str, set[str]]:
    data = json.loads(path.read_text())
    return {c: set(s) for c, s in data["expected_pass"].items()}


def _run_matrix_module():
    import run_matrix
    return run_matrix


def compare(results: dict, expected: dict[str, set[str]], kind: str, expected_file: Path,
            out_dir: Path | None = None) -> list[str]:
    """Differences between a broker's results and its expected passes, as messages. An unexpected
    failure shows the tail of its client's log (run_matrix writes one under ``out_dir``)."""
    unexpected_failures, unexpected_passes = [], []
    for client, per in results.items():
        for scenario, r in per.items():
            if r["status"] == "unsupported":
                continue
            want = scenario in expected.get(client, set())
            if want and r["status"] != "pass":
                line = f"{client}/{scenario}: {r['status']} {r.get('error') or ''}"[:300]
                if r.get("log") and out_dir is not None:
                    path = out_dir / r["log"]
                    tail = _run_matrix_module().log_tail(path)
                    line += f"\n    client log {path}, its end:\n    | " + "\n    | ".join(tail.splitlines())
                unexpected_failures.append(line)
            if not want and r["status"] == "pass":
                unexpected_passes.append(f"{client}/{scenario}")
    msg = []
    if unexpected_failures:
        msg.append(f"expected to pass on {kind} but did not:\n  " + "\n  ".join(unexpected_failures))
    if unexpected_passes:
        msg.append(f"now passing on {kind}: add to {expected_file.relative_to(ROOT)} and drop from "
                   "compat/FINDINGS.md:\n  " + "\n  ".join(unexpected_passes))
    return msg


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("matrix")
    subprocess.run([sys.executable, str(ROOT / "compat" / "run_matrix.py"), "--broker", "kbroker",
                    "--out-dir", str(out), "--batch"], check=True, cwd=ROOT, timeout=1500)
    return {**json.loads((out / "matrix.json").read_text()), "out_dir": out}


@pytest.fixture(scope="module")
def cluster_matrix(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("cluster-matrix")
    scenarios = ",".join(_run_matrix_module().CLUSTER_CI_SCENARIOS)
    subprocess.run([sys.executable, str(ROOT / "compat" / "run_matrix.py"), "--broker", "kbroker-cluster",
                    "--scenarios", scenarios, "--out-dir", str(out), "--batch"], check=True, cwd=ROOT, timeout=1500)
    return {**json.loads((out / "matrix.json").read_text()), "out_dir": out}


@pytest.fixture(scope="module")
def sasl_matrix(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sasl-matrix")
    scenarios = ",".join(_run_matrix_module().SASL_CI_SCENARIOS)
    subprocess.run([sys.executable, str(ROOT / "compat" / "run_matrix.py"), "--broker", "kbroker-sasl",
                    "--scenarios", scenarios, "--out-dir", str(out), "--batch"], check=True, cwd=ROOT, timeout=1500)
    return {**json.loads((out / "matrix.json").read_text()), "out_dir": out}


@pytest.mark.timeout(1800)
def test_matrix_matches_expectations(matrix: dict) -> None:
    msg = compare(matrix["results"]["kbroker"], load_expected(), "kbroker", EXPECTED, matrix["out_dir"])
    assert not msg, "\n".join(msg)


@pytest.mark.timeout(1800)
def test_cluster_matrix_matches_expectations(cluster_matrix: dict) -> None:
    """Three kbroker nodes: every client's CLUSTER_CI_SCENARIOS against expected-kbroker-cluster.json."""
    results = cluster_matrix["results"]["kbroker-cluster"]
    assert set(cluster_matrix["scenarios"]) == set(_run_matrix_module().CLUSTER_CI_SCENARIOS)
    msg = compare(results, load_expected(EXPECTED_CLUSTER), "the kbroker cluster", EXPECTED_CLUSTER,
                  cluster_matrix["out_dir"])
    assert not msg, "\n".join(msg)


@pytest.mark.timeout(1800)
def test_sasl_matrix_matches_expectations(sasl_matrix: dict) -> None:
    """One kbroker node, every client logging in with SCRAM over SASL_SSL: SASL_CI_SCENARIOS against
    expected-kbroker-sasl.json."""
    results = sasl_matrix["results"]["kbroker-sasl"]
    assert set(sasl_matrix["scenarios"]) == set(_run_matrix_module().SASL_CI_SCENARIOS)
    msg = compare(results, load_expected(EXPECTED_SASL), "kbroker over SASL_SSL", EXPECTED_SASL, sasl_matrix["out_dir"])
    assert not msg, "\n".join(msg)


def test_a_failure_message_shows_the_end_of_the_client_log(tmp_path: Path) -> None:
    """compare() (the message the matrix tests fail with) shows the tail of a failed scenario's log."""
    log = tmp_path / "logs" / "kbroker-cluster" / "kafka-python" / "group_three_leave.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    results = {"kafka-python": {
        "group_three_leave": {"status": "fail", "ok": False, "error": "timed out waiting for three members",
                              "log": "logs/kbroker-cluster/kafka-python/group_three_leave.log"},
        "commit_resume": {"status": "pass", "ok": True}}}
    expected = {"kafka-python": {"group_three_leave", "commit_resume"}}
    (msg,) = compare(results, expected, "the kbroker cluster", EXPECTED_CLUSTER, tmp_path)
    assert "kafka-python/group_three_leave: fail timed out waiting for three members" in msg
    assert f"client log {log}, its end:" in msg
    assert "    | line 99" in msg and "    | line 60\n" in msg and "line 59\n" not in msg
    assert "commit_resume" not in msg


def _reason(text: str, client: str, scenario: str, prefix: str = "") -> bool:
    return re.search(rf"^- {prefix}(\*\*all\*\*|{re.escape(client)}) / ({re.escape(scenario)}|\*\*all\*\*): .+",
                     text, re.M) is not None


def test_every_expected_failure_has_a_reason() -> None:
    """Each (client, scenario) not expected to pass is covered by a line in FINDINGS.md: on one
    node `- CLIENT / SCENARIO: reason`; on the cluster `- cluster / CLIENT / SCENARIO: reason`, or
    the one-node line when the scenario is expected to fail there too (one the client cannot run);
    over SASL_SSL likewise with `- sasl / CLIENT / SCENARIO: reason`."""
    run_matrix = _run_matrix_module()
    expected = load_expected()
    expected_cluster = load_expected(EXPECTED_CLUSTER)
    expected_sasl = load_expected(EXPECTED_SASL)
    text = FINDINGS.read_text()
    blanket = re.search(r"^- \*\*all\*\* / \*\*all\*\*: .+", text, re.M)
    missing = []
    for c in run_matrix.CLIENTS:
        for s in run_matrix.SCENARIOS:
            if s not in expected.get(c, set()) and not blanket and not _reason(text, c, s):
                missing.append(f"{c}/{s}")
            fails_on_one_node = s not in expected.get(c, set())
            if (s not in expected_cluster.get(c, set()) and not blanket
                    and not (fails_on_one_node and _reason(text, c, s)) and not _reason(text, c, s, "cluster / ")):
                missing.append(f"cluster {c}/{s}")
            if (s not in expected_sasl.get(c, set()) and not blanket
                    and not (fails_on_one_node and _reason(text, c, s)) and not _reason(text, c, s, "sasl / ")):
                missing.append(f"sasl {c}/{s}")
    assert not missing, f"no reason in compat/FINDINGS.md for: {missing}"


def test_every_cluster_reason_is_a_cluster_failure() -> None:
    """A `- cluster / CLIENT / SCENARIO` line names a scenario expected to fail on the cluster and
    pass on one node (so the cluster lines go when the failures do)."""
    expected = load_expected()
    expected_cluster = load_expected(EXPECTED_CLUSTER)
    stale = []
    for client, scenario in re.findall(r"^- cluster / ([\w.-]+) / ([\w]+): .+", FINDINGS.read_text(), re.M):
        if scenario in expected_cluster.get(client, set()) or scenario not in expected.get(client, set()):
            stale.append(f"{client}/{scenario}")
    assert not stale, f"cluster lines in compat/FINDINGS.md that do not name a cluster-only failure: {stale}"
