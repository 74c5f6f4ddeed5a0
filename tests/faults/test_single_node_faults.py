"""A short single-node fault run per flush policy: kbroker killed with SIGKILL and restarted three
times under the queue workload (real confluent-kafka clients); nothing acknowledged may be lost and
the checker must find no anomaly."""

from __future__ import annotations

import pytest
from faults.history import load
from faults.runner import RunConfig, run


def acked_between_faults(ops: list[dict]) -> list[set[str]]:
    """The producers with an acknowledged send between each broker start and the next kill (and
    after the last start)."""
    producers: list[set[str]] = []
    for op in ops:
        if op["process"] == "nemesis" and op["f"] == "start":
            producers.append(set())
        elif op["process"] == "nemesis" and op["f"] == "kill":
            producers.append(set())  # acknowledgements after the kill belong to no interval
        elif op["f"] == "send" and op["type"] == "ok" and producers:
            producers[-1].add(op["process"].split(".")[0])
    return producers[::2]


@pytest.mark.parametrize("flush", ["every", "default"])
def test_kill_restart_cycles_lose_nothing_acknowledged(tmp_path, flush):
    report = run(RunConfig(out=tmp_path, cycles=3, seed=7, flush=flush, heal_min=0.2, heal_max=0.6,
                           pause_probability=0.5, rate=100.0))
    assert report["anomaly_counts"] == dict.fromkeys(report["anomaly_counts"], 0), report["anomalies"]
    assert report["drain_complete"] and report["valid"] and report["broker_valid"]
    assert report["duplicates_after_client_timeout"] == 0
    assert report["cycles"] == 3 and report["faults"]["kill"] == 3 and report["broker_starts"] == 4
    ops = load(tmp_path / "history.jsonl")
    kills = [op for op in ops if op["process"] == "nemesis" and op["f"] == "kill"]
    starts = [op for op in ops if op["process"] == "nemesis" and op["f"] == "start"]
    assert len(kills) == 3 and len(starts) == 4
    assert all(starts[i]["index"] < kills[i]["index"] < starts[i + 1]["index"] for i in range(3))
    between = acked_between_faults(ops)
    assert between == [{"p0", "p1"}] * 4, between
    assert report["values_read"] >= report["sends_acknowledged"] > 0
    assert (tmp_path / "report.txt").read_text().startswith("valid: True")


def test_losing_the_page_cache_is_caught(tmp_path):
    """The same run with a simulated machine crash (each partition's tail cut off after the kill):
    acknowledged writes are gone and the run must say so."""
    report = run(RunConfig(out=tmp_path, cycles=1, seed=7, flush="default", heal_min=1.0, heal_max=1.0,
                           pause_probability=0.0, rate=100.0, truncate_after_kill=4000))
    assert report["faults"]["truncate"] == 1
    assert not report["valid"]
    assert report["anomaly_counts"]["lost"] > 0, report["anomalies"]
