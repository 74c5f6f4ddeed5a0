"""Short cluster fault runs against three kbroker nodes and against a three-node Apache Kafka 4.4
(see scripts/faults/README.md): acks=all, RF=3, min.insync.replicas=2, unclean election off, nodes
in network namespaces behind the proxies, three seeded faults (a partition, a kill -9 and a one-way
block), the queue workload and the final drain. Nothing acknowledged may be lost and the checker
must find no anomaly of the broker's."""

from __future__ import annotations

import warnings

import pytest
from faults import pressure, stall
from faults.cluster_runner import ClusterRunConfig, run
from faults.history import load
from faults.report import fault_intervals
from faults.schedule import generate
from rootcheck import needs_root  # noqa: F401 - autouse fixture

KINDS = ("partition", "kill", "one-way")


def test_schedule_of_the_short_run_has_each_kind():
    assert sorted(f.kind for f in generate(1, 3, ["n1", "n2", "n3"], KINDS, (1.5, 3.0), (1.0, 2.0))) == sorted(KINDS)


@pytest.mark.parametrize("target", ["kbroker", "kafka"])
def test_short_cluster_run_loses_nothing_acknowledged(tmp_path, target):
    report = run(ClusterRunConfig(out=tmp_path, target=target, faults=3, seed=1, kinds=KINDS, rate=50.0,
                                  duration_min=1.5, duration_max=3.0, heal_min=1.0, heal_max=2.0))
    assert report["target"] == target
    # A phase of 20 s or more is named in the session's warnings summary with what the machine went
    # through meanwhile (not a failure: the run's verdicts are below), so a slow CI run says why.
    # A wait for acknowledgements of 20 s or more has its snapshot (stall.py) in the warning too.
    for name, slow in report["slow_phases"].items():
        stalls = [s for s in report["stalls"] if s["wait"] == name]
        warnings.warn(f"{target} run: phase {name} took {slow['s']} s: {pressure.brief(slow)}; "
                      f"slow starts: {pressure.brief_starts(report['slow_starts']) or 'none'}"
                      + "".join(f"; stall: {stall.brief(s)}" for s in stalls), stacklevel=1)
    # The broker shows no anomaly; a duplicate may come from librdkafka's epoch bump after a
    # message timeout (explain.py) and is counted apart: every duplicate must be one of those.
    assert report["broker_anomaly_counts"] == dict.fromkeys(report["anomaly_counts"], 0), report["anomalies"]
    assert report["anomaly_counts"]["duplicate"] == report["duplicates_after_client_timeout"]
    assert report["anomaly_counts"]["reorder"] == report["reorders_of_those_duplicates"]
    # What ran slowly or not at all is named in the message: the phases' times, the machine's pressure
    # in the phases of 20 s or more (scripts/faults/pressure.py) and the run's verdicts.
    verdicts = {k: report[k] for k in ("drain_complete", "first_acks", "heals_without_progress", "nodes_not_back", "phase_s",
                                       "slow_phases", "longest_write_stall", "ack_latency_ms")}
    assert report["first_acks"], verdicts  # the stall snapshot, if the wait was long: report["stalls"]
    assert report["drain_complete"] and report["progress_after_each_heal"] and not report["nodes_not_back"], verdicts
    assert report["broker_valid"], verdicts
    assert report["faults_applied"] == 3 and report["fault_kinds"] == dict.fromkeys(KINDS, 1), verdicts
    assert report["crashes"] == [], verdicts
    killed = next(f["nodes"][0] for f in report["schedule"] if f["kind"] == "kill")
    assert report["node_starts"][killed] == 2
    assert report["values_read"] >= report["sends_acknowledged"] > 0
    ops = load(tmp_path / "history.jsonl")
    assert [kind for kind, _start, _end in fault_intervals(ops)] == [f["kind"] for f in report["schedule"]]
    assert (tmp_path / "report.txt").read_text().startswith(f"valid: {report['valid']}")


def test_short_transactional_kbroker_run_keeps_committed_and_hides_aborted(tmp_path):
    """The transactional variant on three kbroker nodes: transactions committed and aborted through a
    partition, a kill -9 and a one-way block; read_committed readers and drain. (Before the
    transaction coordinator waited for its log records to be replicated, this schedule lost a
    transaction acknowledged as committed when its coordinator was killed: docs/faults.md.)"""
    report = run(ClusterRunConfig(out=tmp_path, target="kbroker", faults=3, seed=1, kinds=KINDS, rate=50.0,
                                  duration_min=1.5, duration_max=3.0, heal_min=1.0, heal_max=2.0,
                                  transactional=True))
    assert report["broker_anomaly_counts"] == dict.fromkeys(report["anomaly_counts"], 0), report["anomalies"]
    assert report["first_acks"] and report["drain_complete"] and report["progress_after_each_heal"]
    assert not report["nodes_not_back"]
    figures = report["transactions"]
    assert figures["commit"] > 0 and figures["aborted_values_written"] > 0, figures  # aborted writes to hide
    assert report["values_read"] > 0
