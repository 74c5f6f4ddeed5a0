"""Duplicates explained by librdkafka's epoch bump after a message timeout, and those not."""

from __future__ import annotations

from faults.checker import check
from faults.explain import client_timeout_duplicates, client_timeout_reorders, score

from tests.faults.history_builder import H


def history(timeout_process: str | None) -> H:
    h = H()
    h.op("p0", "invoke", "send", value=1, partition=0)
    if timeout_process is not None:
        h.op(timeout_process, "invoke", "send", value=2, partition=1)
        h.op(timeout_process, "info", "send", value=2, partition=1, error="_MSG_TIMED_OUT")
    h.op("p0", "ok", "send", value=1, partition=0, offset=5)
    h.poll("c", (0, 4, 1), (0, 5, 1))  # value 1 written twice
    return h


def test_a_duplicate_after_its_producers_timeout_is_the_clients():
    ops = history("p0").ops
    duplicates = check(ops)["anomalies"]["duplicate"]
    assert [d["value"] for d in duplicates] == [1]
    assert client_timeout_duplicates(ops, duplicates) == duplicates


def test_a_duplicate_without_a_timeout_or_after_another_producers_is_not_explained():
    for process in (None, "p1"):
        ops = history(process).ops
        duplicates = check(ops)["anomalies"]["duplicate"]
        assert len(duplicates) == 1
        assert client_timeout_duplicates(ops, duplicates) == []


def test_the_reorder_of_a_resent_duplicate_is_the_clients_and_no_other():
    h = history("p0")
    h.op("p0", "invoke", "send", value=3, partition=0)
    h.op("p0", "ok", "send", value=3, partition=0, offset=6)
    h.poll("c", (0, 6, 3), (0, 7, 1))  # value 1's second copy after value 3, sent later
    ops = h.ops
    found = check(ops)["anomalies"]
    explained = client_timeout_duplicates(ops, found["duplicate"])
    assert [d["value"] for d in explained] == [1] and len(found["reorder"]) >= 1
    assert client_timeout_reorders(found["reorder"], explained) == found["reorder"]
    assert client_timeout_reorders(found["reorder"], []) == []


def scored(h: H, healthy: bool = True) -> dict:
    return score({}, h.ops, healthy)


def test_score_counts_an_explained_duplicate_apart():
    report = scored(history("p0"))
    assert report["duplicates_after_client_timeout"] == 1
    assert report["broker_anomaly_counts"]["duplicate"] == 0
    assert report["valid"] is False and report["broker_valid"] is True


def test_score_keeps_an_unexplained_duplicate_as_the_brokers():
    for process in (None, "p1"):  # no timeout, or another producer's
        report = scored(history(process))
        assert report["duplicates_after_client_timeout"] == 0
        assert report["broker_anomaly_counts"]["duplicate"] == 1
        assert report["valid"] is False and report["broker_valid"] is False


def test_score_counts_the_reorder_of_an_explained_duplicate_apart_but_not_an_unexplained_ones():
    for process, broker_valid in (("p0", True), (None, False)):
        h = history(process)
        h.op("p0", "invoke", "send", value=3, partition=0)
        h.op("p0", "ok", "send", value=3, partition=0, offset=6)
        h.poll("c", (0, 6, 3), (0, 7, 1))  # value 1's second copy after value 3, sent later
        report = scored(h)
        reorders = report["broker_anomaly_counts"]["reorder"] + report["reorders_of_those_duplicates"]
        assert reorders >= 1
        assert report["reorders_of_those_duplicates"] == (reorders if broker_valid else 0)
        assert report["valid"] is False and report["broker_valid"] is broker_valid


def test_score_never_explains_a_lost_write_even_after_a_timeout():
    h = history("p0")
    h.op("p0", "invoke", "send", value=4, partition=0)
    h.op("p0", "info", "send", value=4, partition=0, error="_MSG_TIMED_OUT")
    h.send("p0", 5, 0, 8)  # acknowledged, never read
    report = scored(h)
    assert report["broker_anomaly_counts"]["lost"] == 1
    assert report["valid"] is False and report["broker_valid"] is False


def test_score_of_an_unhealthy_run_is_invalid_without_anomalies():
    h = H()
    h.send("p0", 1, 0, 0)
    h.poll("c", (0, 0, 1))
    assert scored(h)["valid"] is True and scored(h)["broker_valid"] is True
    report = scored(h, healthy=False)
    assert report["valid"] is False and report["broker_valid"] is False


def test_both_runners_score_with_the_same_function():
    import faults.cluster_runner
    import faults.runner

    assert faults.runner.score is score and faults.cluster_runner.score is score


def test_cluster_fault_intervals_pair_each_fault_with_its_heal():
    from faults.report import fault_intervals

    h = H()
    h.op("nemesis", "info", "fault", id=0, kind="partition", nodes=["n1"])
    h.op("nemesis", "info", "fault", id=1, kind="delay", nodes=["n2"])  # overlapping: paired by id
    h.op("nemesis", "info", "heal", id=0, kind="partition", nodes=["n1"])
    h.op("nemesis", "info", "crashed", node="n3", exit=1, during="partition")
    h.op("nemesis", "info", "heal", id=1, kind="delay", nodes=["n2"])
    h.op("nemesis", "info", "fault", id=2, kind="kill", nodes=["n3"])  # never healed: no interval
    t = [op["time"] for op in h.ops]
    assert fault_intervals(h.ops) == [("partition", t[0], t[2]), ("delay", t[1], t[4])]
