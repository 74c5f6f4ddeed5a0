"""compat/run_matrix.py's own logic, without brokers or clients: the --broker kinds and how
MATRIX.md shows the one-node and cluster columns side by side."""

from __future__ import annotations

import sys

import pytest
import run_matrix


def test_broker_kinds_and_aliases() -> None:
    assert run_matrix.parse_kinds("all") == ["kbroker", "kafka", "kbroker-cluster", "kafka-cluster",
                                             "kbroker-sasl", "kafka-sasl"]
    assert run_matrix.parse_kinds("both") == ["kbroker", "kafka"]
    assert run_matrix.parse_kinds("cluster") == ["kbroker-cluster", "kafka-cluster"]
    assert run_matrix.parse_kinds("sasl") == ["kbroker-sasl", "kafka-sasl"]
    assert run_matrix.parse_kinds("kafka-cluster, kbroker,kbroker") == ["kbroker", "kafka-cluster"]
    with pytest.raises(ValueError, match="unknown broker 'zookeeper'"):
        run_matrix.parse_kinds("kbroker,zookeeper")


def test_cluster_settings_replicate_everything_three_times() -> None:
    s = run_matrix.CLUSTER_SETTINGS
    assert s["default.replication.factor"] == s["offsets.topic.replication.factor"] == "3"
    assert s["transaction.state.log.replication.factor"] == s["share.coordinator.state.topic.replication.factor"] == "3"
    assert s["min.insync.replicas"] == s["transaction.state.log.min.isr"] == "2"
    # the rest as on one node
    assert s["auto.create.topics.enable"] == run_matrix.BROKER_SETTINGS["auto.create.topics.enable"] == "false"
    assert set(run_matrix.CLUSTER_CI_SCENARIOS) < set(run_matrix.SCENARIOS)


def _data(kinds: dict[str, dict[str, dict[str, str]]]) -> dict:
    return {
        "generated": "2026-12-06 08:00 UTC", "runtime_seconds": 12.0,
        "settings": run_matrix.BROKER_SETTINGS, "cluster_settings": run_matrix.CLUSTER_SETTINGS,
        "clients": {"kafka-python": "3.0.12", "kcat": "1.7.1"},
        "scenarios": ["produce_consume_none", "admin_topics"],
        "brokers": {k: {"kind": k, "start_seconds": 1.0, "seconds": 5.0} for k in kinds},
        "results": {k: {c: {s: {"status": st} for s, st in per.items()} for c, per in rs.items()}
                    for k, rs in kinds.items()},
    }


def test_matrix_md_shows_one_node_and_cluster_pairs(tmp_path) -> None:
    ok = {"produce_consume_none": "pass", "admin_topics": "pass"}
    kcat = {"produce_consume_none": "pass", "admin_topics": "unsupported"}
    run_matrix.write_outputs(_data({
        "kbroker": {"kafka-python": ok, "kcat": kcat},
        "kafka": {"kafka-python": ok, "kcat": kcat},
        "kbroker-cluster": {"kafka-python": {**ok, "admin_topics": "fail"}, "kcat": kcat},
        "kafka-cluster": {"kafka-python": ok, "kcat": {**kcat, "produce_consume_none": "timeout"}},
    }), tmp_path)
    md = (tmp_path / "MATRIX.md").read_text()
    assert "| kafka-python 3.0.12 | 2 of 2 | 2 of 2 | 1 of 2 | 2 of 2 |" in md
    assert "| kcat 1.7.1 | 1 of 1 | 1 of 1 | 1 of 1 | 0 of 1 |" in md
    assert "| **all** | 3 of 3 | 3 of 3 | 2 of 3 | 2 of 3 |" in md
    assert "| produce_consume_none | ✅ / ✅ · ✅ / ✅ | ✅ / ✅ · ✅ / ⏱ |" in md
    assert "| admin_topics | ✅ / ✅ · ❌ / ✅ | — |" in md
    assert "- `min.insync.replicas=2`" in md.split("## Cluster settings")[1]
    assert "- kbroker-cluster / kafka-python / admin_topics" in md


def test_matrix_md_without_the_cluster_keeps_one_pair(tmp_path) -> None:
    ok = {"produce_consume_none": "pass", "admin_topics": "fail"}
    run_matrix.write_outputs(_data({"kbroker": {"kafka-python": ok, "kcat": ok}}), tmp_path)
    md = (tmp_path / "MATRIX.md").read_text()
    assert "| admin_topics | ❌ / · | ❌ / · |" in md
    assert "cluster" not in md.lower()


def test_matrix_md_shows_the_sasl_pair_and_its_settings(tmp_path) -> None:
    ok = {"produce_consume_none": "pass", "admin_topics": "pass"}
    kcat = {"produce_consume_none": "fail", "admin_topics": "unsupported"}
    data = _data({
        "kbroker": {"kafka-python": ok, "kcat": {**kcat, "produce_consume_none": "pass"}},
        "kafka": {"kafka-python": ok, "kcat": {**kcat, "produce_consume_none": "pass"}},
        "kbroker-sasl": {"kafka-python": ok, "kcat": kcat},
        "kafka-sasl": {"kafka-python": ok, "kcat": kcat},
    })
    data["brokers"]["kbroker-sasl"]["generated"] = "2026-12-06 11:05 UTC"
    run_matrix.write_outputs(data, tmp_path)
    md = (tmp_path / "MATRIX.md").read_text()
    assert "| kcat 1.7.1 | 1 of 1 | 1 of 1 | 0 of 1 | 0 of 1 |" in md
    assert "| produce_consume_none | ✅ / ✅ · ✅ / ✅ | ✅ / ✅ · ❌ / ❌ |" in md
    assert "(a separate run, 2026-12-06 11:05 UTC)" in md
    assert "SASL_SSL column" in md and "SCRAM-SHA-256" in md
    assert "Cluster settings" not in md


# A scenario program as run_batch drives them: PROG BOOTSTRAP SCENARIO..., one JSON line a scenario.
FAKE_CLIENT = """\
import json, sys, time
for name in sys.argv[2:]:
    print("noise before " + name, flush=True)
    if name == "hang":
        time.sleep(3600)
    if name == "crash":
        print("crashed in " + name, file=sys.stderr, flush=True)
        sys.exit(3)
    print(json.dumps({"scenario": name, "ok": not name.startswith("bad"), "error": "", "seconds": 0.0}),
          flush=True)
"""


def test_run_batch_keeps_each_scenarios_timeout_and_goes_on_after_a_hang_or_a_crash(tmp_path) -> None:
    prog = tmp_path / "fake_client.py"
    prog.write_text(FAKE_CLIENT)
    cmd = [sys.executable, "-I", "-S", str(prog)]
    # 5 s: the hang waits it out once; each other scenario reports within milliseconds of its
    # program's start (a Python without site packages), far inside it even on a loaded machine.
    got = run_matrix.run_batch("fake", cmd, "127.0.0.1:1", ["a", "bad", "hang", "b", "crash", "c"], timeout=5)
    assert {s: r["status"] for s, r in got.items()} == {
        "a": "pass", "bad": "fail", "hang": "timeout", "b": "pass", "crash": "fail", "c": "pass"}
    assert got["hang"]["error"] == "timed out after 5s"
    assert got["crash"]["error"].startswith("no result line (exit 3): ") and "crashed in crash" in got["crash"]["error"]
