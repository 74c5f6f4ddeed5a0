"""Duplicates explained by librdkafka's epoch bump after a message timeout, and those not."""

from __future__ import annotations

from faults.checker import check
from faults.explain import client_timeout_duplicates, client_timeout_reorders

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
