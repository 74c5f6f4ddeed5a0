"""The fault checker on hand-made histories, one per anomaly, and on a clean one."""

from __future__ import annotations

import json

import pytest
from faults import history
from faults.checker import ANOMALIES, check

from tests.faults.history_builder import H


def clean() -> H:
    h = H()
    h.send("p0", 1, 0, 0).send("p0", 2, 0, 1).send("p1", 3, 1, 0).send("p0", 4, 0, 2, type_="info")
    h.poll("c0", (0, 0, 1), (0, 1, 2)).poll("c0", (1, 0, 3), (0, 2, 4))
    return h


def only(result, name):
    assert {k for k, v in result["anomaly_counts"].items() if v} == {name}, result["anomalies"]
    return result["anomalies"][name]


def test_clean_history_is_valid():
    result = check(clean().ops)
    assert result["valid"], result["anomalies"]
    assert result["anomaly_counts"] == {name: 0 for name in ANOMALIES}
    assert result["sends_acknowledged"] == 3 and result["sends_invoked"] == 4
    assert result["ops"]["send:info"] == 1


def test_acknowledged_never_read_is_lost_but_unacknowledged_is_not():
    h = clean().send("p1", 9, 1, 1)  # acknowledged, nobody read it
    h.send("p1", 10, 1, 2, type_="info")  # indeterminate and unread: fine
    assert only(check(h.ops), "lost") == [{"value": 9, "partition": 1, "offset": 1, "acknowledged": True}]


def test_written_value_missing_from_the_final_drain_is_lost_even_if_read_before():
    h = clean().send("p1", 9, 1, 1).send("p1", 10, 1, 2, type_="info").poll("c0", (1, 1, 9), (1, 2, 10))
    h.poll("drain", (0, 0, 1), (0, 1, 2), (0, 2, 4), (1, 0, 3))  # the drain no longer finds 9 and 10
    assert only(check(h.ops), "lost") == [{"value": 9, "partition": 1, "offset": 1, "acknowledged": True},
                                          {"value": 10, "partition": 1, "offset": 2, "acknowledged": False}]


def test_a_send_acknowledged_without_an_offset_must_be_read_and_checks_no_offset():
    # librdkafka's implicit ack (seen on Kafka, seed 277): the send's own request failed
    # NOT_LEADER_OR_FOLLOWER, a later batch succeeded, so it is delivered with no offset (None).
    h = clean()
    h.op("p1", "invoke", "send", value=9, partition=1).op("p1", "ok", "send", value=9, partition=1, offset=None)
    h.send("p1", 10, 1, 2)
    read = H()
    read.ops = [dict(op) for op in h.ops]
    read.poll("drain", (0, 0, 1), (0, 1, 2), (0, 2, 4), (1, 0, 3), (1, 1, 9), (1, 2, 10))
    assert check(read.ops)["valid"], check(read.ops)["anomalies"]
    h.poll("drain", (0, 0, 1), (0, 1, 2), (0, 2, 4), (1, 0, 3), (1, 2, 10))  # 9 is not there
    assert only(check(h.ops), "lost") == [{"value": 9, "partition": 1, "offset": None, "acknowledged": True}]


def test_drain_with_everything_is_valid():
    h = clean().poll("drain", (0, 0, 1), (0, 1, 2), (0, 2, 4), (1, 0, 3))
    assert check(h.ops)["valid"]


def test_value_read_at_two_offsets_is_duplicate():
    h = clean().poll("drain", (0, 0, 1), (0, 1, 2), (0, 2, 4), (0, 3, 4), (1, 0, 3))
    assert only(check(h.ops), "duplicate") == [{"value": 4, "at": [(0, 2), (0, 3)]}]


def test_offset_acknowledged_twice_to_different_values():
    h = clean().send("p1", 5, 0, 1)
    result = check(h.ops)
    assert result["anomalies"]["double_ack"] == [{"partition": 0, "offset": 1, "values": [2, 5]}]
    assert result["anomaly_counts"]["lost"] == 1  # 5 was acknowledged but no one read it


def test_reads_disagreeing_on_an_offset_are_inconsistent():
    h = clean().send("p1", 5, 1, 1, type_="info").poll("c1", (1, 0, 3), (1, 1, 5)).poll("c2", (1, 1, 3))
    result = check(h.ops)
    assert result["anomalies"]["inconsistent_offset"] == [{"partition": 1, "offset": 1, "values": [3, 5]}]


def test_producer_values_out_of_send_order_in_a_partition_are_reordered():
    h = H()
    h.send("p0", 1, 0, 1).send("p0", 2, 0, 0).send("p1", 3, 0, 2)
    h.poll("c0", (0, 0, 2), (0, 1, 1), (0, 2, 3))
    assert only(check(h.ops), "reorder") == [{"partition": 0, "process": "p0", "earlier": [0, 2], "later": [1, 1]}]


def test_interleaved_producers_are_not_reordered():
    h = H()
    h.send("p0", 1, 0, 0).send("p1", 2, 0, 1).send("p0", 3, 0, 2).send("p1", 4, 0, 3)
    h.poll("c0", (0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 3, 4))
    assert check(h.ops)["valid"]


def test_consumer_jumping_over_an_existing_offset_is_a_poll_skip():
    h = clean().poll("c1", (0, 0, 1)).poll("c1", (0, 2, 4))
    assert only(check(h.ops), "poll_skip") == [{"process": "c1", "partition": 0, "from": 0, "to": 2, "missed": 1,
                                                "index": len(h.ops) - 1}]


def test_gap_with_no_known_offset_is_not_a_skip():
    h = H().send("p0", 1, 0, 0).send("p0", 2, 0, 5).poll("c0", (0, 0, 1)).poll("c0", (0, 5, 2))
    assert check(h.ops)["valid"]


def test_consumer_going_backwards_is_nonmonotonic():
    h = clean().poll("c1", (0, 0, 1), (0, 1, 2)).poll("c1", (0, 1, 2))
    assert only(check(h.ops), "nonmonotonic_poll")[0]["from"] == 1


@pytest.mark.parametrize("event", [{"f": "assign"}, {"f": "restart"}, {"f": "rebalance", "partitions": [0]}])
def test_assignment_change_or_restart_allows_going_back(event):
    h = clean().poll("c1", (0, 0, 1), (0, 1, 2))
    h.op("c1", "info", **event).poll("c1", (0, 0, 1))
    assert check(h.ops)["valid"]


def test_reset_of_another_partition_does_not_excuse():
    h = clean().poll("c1", (0, 0, 1), (0, 1, 2)).op("c1", "info", "rebalance", partitions=[1]).poll("c1", (0, 0, 1))
    assert only(check(h.ops), "nonmonotonic_poll")


def commits(h: H, process, *offsets):
    h.op(process, "invoke", "commit", offsets=[list(o) for o in offsets])
    return h.op(process, "ok", "commit", offsets=[list(o) for o in offsets])


def test_reassigned_consumer_starting_below_its_acknowledged_commit_lost_it():
    h = clean().op("g", "info", "assign", partitions=[0]).poll("g", (0, 0, 1), (0, 1, 2))
    commits(h, "g", (0, 2))
    h.op("g", "info", "revoke", partitions=[0]).op("g", "info", "assign", partitions=[0]).poll("g", (0, 1, 2))
    found = only(check(h.ops), "lost_commit")
    assert found == [{"process": "g", "partition": 0, "committed": 2, "read_from": 1, "index": len(h.ops) - 1}]


def test_reassigned_consumer_resuming_at_its_commit_is_fine():
    h = clean().op("g", "info", "assign", partitions=[0]).poll("g", (0, 0, 1))
    commits(h, "g", (0, 1))
    h.op("g", "invoke", "commit", offsets=[[0, 2]]).op("g", "fail", "commit", offsets=[[0, 2]])
    h.op("g", "info", "assign", partitions=[0]).poll("g", (0, 1, 2), (0, 2, 4))
    assert check(h.ops)["valid"]


def test_read_never_sent_is_unexpected():
    h = clean().poll("c1", (1, 1, 77))
    assert only(check(h.ops), "unexpected") == [{"value": 77}]


def test_history_file_round_trip(tmp_path):
    path = tmp_path / "h.jsonl"
    rec = history.History(path)
    rec.record("p0", "invoke", "send", value=1, partition=0)
    rec.record("p0", "ok", "send", value=1, partition=0, offset=0)
    rec.close()
    ops = history.load(path)
    assert [op["type"] for op in ops] == ["invoke", "ok"] and ops[1]["offset"] == 0
    assert all(json.loads(line)["index"] == i for i, line in enumerate(path.read_text().splitlines()))
    with pytest.raises(ValueError):
        rec.record("p0", "done", "send")


def test_malformed_history_line_is_named(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"index":0,"time":0,"process":"p","type":"ok","f":"send"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        history.load(path)


def test_check_history_cli_exit_codes(tmp_path, capsys):
    from faults.check_history import main

    good, lossy, bad = tmp_path / "good.jsonl", tmp_path / "lossy.jsonl", tmp_path / "bad.jsonl"
    good.write_text("".join(json.dumps(op) + "\n" for op in clean().ops))
    lossy.write_text("".join(json.dumps(op) + "\n" for op in clean().send("p1", 9, 1, 1).ops))
    bad.write_text("not json\n")
    assert main([str(good)]) == 0
    assert main([str(lossy)]) == 1
    assert "lost=1" in capsys.readouterr().out
    assert main([str(bad)]) == 2


def test_report_figures_and_fault_intervals():
    from faults.report import build, fault_intervals, text

    h = clean()
    h.op("nemesis", "info", "pause").op("nemesis", "info", "resume").op("nemesis", "info", "kill")
    h.op("nemesis", "info", "start")
    t = [op["time"] for op in h.ops if op["process"] == "nemesis"]
    assert fault_intervals(h.ops) == [("pause", t[0], t[1]), ("kill", t[2], t[3])]
    report = build(h.ops, {"cycles": 1})
    assert report["cycles"] == 1 and report["valid"] and report["faults"] == {"pause": 1, "resume": 1, "kill": 1,
                                                                              "start": 1}
    assert report["sends_acknowledged"] == 3 and report["operations"] == len(h.ops)
    assert report["ack_latency_ms"]["max"] == pytest.approx(10.0)  # each ok 0.01 s after its invoke
    assert "lost=0" in text(report)


def test_truncate_tails_cuts_each_partition_newest_segment(tmp_path):
    from faults.runner import truncate_tails

    for p in range(2):
        (tmp_path / f"queue-{p}").mkdir()
        (tmp_path / f"queue-{p}" / "00000000000000000000.log").write_bytes(b"x" * 100)
        (tmp_path / f"queue-{p}" / "00000000000000000050.log").write_bytes(b"y" * 30)
    (tmp_path / "other-0").mkdir()
    (tmp_path / "other-0" / "00000000000000000000.log").write_bytes(b"z" * 10)
    assert truncate_tails(tmp_path, "queue", 20) == 40
    assert (tmp_path / "queue-0" / "00000000000000000050.log").read_bytes() == b"y" * 10
    assert (tmp_path / "queue-1" / "00000000000000000000.log").stat().st_size == 100
    assert truncate_tails(tmp_path, "queue", 20) == 20  # only 10 bytes left in each newest segment
    assert (tmp_path / "other-0" / "00000000000000000000.log").stat().st_size == 10


# -- transactions (the read_committed variant) -----------------------------------------------------


def txn(h: H, process, name, sends, outcome="commit"):
    """A transaction: its sends (value, partition, offset), the end request, then its outcome
    ("commit"/"abort" acknowledged, None unknown)."""
    h.op(process, "invoke", "txn", txn=name, values=[v for v, _p, _o in sends])
    for value, partition, offset in sends:
        h.op(process, "invoke", "send", value=value, partition=partition, txn=name)
        h.op(process, "ok", "send", value=value, partition=partition, offset=offset)
    h.op(process, "invoke", "txn-end", txn=name, intent=outcome or "commit")
    if outcome is None:
        return h.op(process, "info", "txn", txn=name, error="fatal")
    return h.op(process, "ok", "txn", txn=name, outcome=outcome)


def txn_history() -> H:
    """t0 committed (offsets 0, 1), t1 aborted (2, 3 and its marker 4), t2 committed (5; marker 6)."""
    h = H()
    txn(h, "p0", "t0", [(1, 0, 0), (2, 0, 1)])
    txn(h, "p0", "t1", [(3, 0, 2), (4, 0, 3)], outcome="abort")
    return txn(h, "p0", "t2", [(5, 0, 5)])


def test_committed_transactions_read_and_aborted_ones_skipped_is_valid():
    h = txn_history().poll("c0", (0, 0, 1), (0, 1, 2)).poll("c0", (0, 5, 5))
    h.poll("drain", (0, 0, 1), (0, 1, 2), (0, 5, 5))
    result = check(h.ops)
    assert result["valid"], result["anomalies"]
    assert set(ANOMALIES) >= {"aborted_read", "uncommitted_read", "torn_transaction"}


def test_read_of_an_aborted_transaction_is_an_aborted_read():
    h = txn_history().poll("c0", (0, 0, 1), (0, 1, 2), (0, 2, 3)).poll("drain", (0, 0, 1), (0, 1, 2), (0, 5, 5))
    result = check(h.ops)
    assert [a["value"] for a in result["anomalies"]["aborted_read"]] == [3]
    assert result["anomalies"]["aborted_read"][0]["txn"] == "t1"


def test_acknowledged_value_of_a_committed_transaction_missing_from_the_drain_is_lost_and_torn():
    h = txn_history().poll("drain", (0, 0, 1), (0, 5, 5))
    result = check(h.ops)
    assert result["anomalies"]["lost"] == [{"value": 2, "partition": 0, "offset": 1, "acknowledged": True}]
    assert result["anomalies"]["torn_transaction"] == [{"txn": "t0", "outcome": "commit", "values": [1, 2],
                                                         "drained": [1]}]


def test_unknown_outcome_must_be_all_or_nothing():
    h = H()
    txn(h, "p0", "t0", [(1, 0, 0), (2, 1, 0)], outcome=None)
    assert check(h.ops)["valid"]  # not expected in a drain: absent is fine (no drain here either)
    whole = H()
    whole.ops = [dict(op) for op in h.ops]
    whole.poll("drain", (0, 0, 1), (1, 0, 2))
    assert check(whole.ops)["valid"]
    torn = H()
    torn.ops = [dict(op) for op in h.ops]
    torn.poll("drain", (0, 0, 1))
    assert only(check(torn.ops), "torn_transaction") == [{"txn": "t0", "outcome": None, "values": [1, 2],
                                                          "drained": [1]}]


def test_read_before_the_commit_was_asked_for_is_uncommitted():
    h = H()
    h.op("p0", "invoke", "txn", txn="t0", values=[1])
    h.op("p0", "invoke", "send", value=1, partition=0, txn="t0").op("p0", "ok", "send", value=1, partition=0, offset=0)
    h.poll("c0", (0, 0, 1))  # read while the transaction is still open
    h.op("p0", "invoke", "txn-end", txn="t0", intent="commit").op("p0", "ok", "txn", txn="t0", outcome="commit")
    found = only(check(h.ops), "uncommitted_read")
    assert [(f["value"], f["txn"]) for f in found] == [(1, "t0")]


def test_send_never_queued_is_not_part_of_its_transaction():
    h = H()
    h.op("p0", "invoke", "txn", txn="t0", values=[1, 2])
    h.op("p0", "invoke", "send", value=1, partition=0, txn="t0").op("p0", "ok", "send", value=1, partition=0, offset=0)
    h.op("p0", "invoke", "send", value=2, partition=1, txn="t0").op("p0", "fail", "send", value=2, partition=1, txn="t0")
    h.op("p0", "invoke", "txn-end", txn="t0", intent="commit").op("p0", "ok", "txn", txn="t0", outcome="commit")
    h.poll("drain", (0, 0, 1))
    assert check(h.ops)["valid"]


def test_read_committed_consumer_skipping_aborted_offsets_is_no_poll_skip():
    h = txn_history().poll("c0", (0, 0, 1), (0, 1, 2)).poll("c0", (0, 5, 5))  # 2, 3 aborted, 4 a marker
    assert check(h.ops)["valid"]
    h = txn_history().poll("c0", (0, 0, 1)).poll("c0", (0, 5, 5))  # 1 (offset 1) is committed: skipped
    assert check(h.ops)["anomalies"]["poll_skip"][0]["missed"] == 1  # (and lost: no drain read it)


def test_transaction_figures_count_outcomes_and_written_aborted_values():
    from faults.checker import transaction_figures

    h = txn_history()
    txn(h, "p1", "t3", [(9, 1, 0)], outcome=None)
    assert transaction_figures(h.ops) == {"commit": 2, "abort": 1, "unknown": 1, "aborted_values_written": 2}


def test_longest_write_stall_is_the_longest_unacknowledged_stretch_of_a_partition():
    from faults.report import longest_write_stall

    h = H()
    for value, partition, offset, at in ((1, 0, 0, 0.0), (2, 1, 0, 1.0), (3, 0, 1, 5.0), (4, 1, 1, 9.0)):
        h.ops.append({"index": len(h.ops), "time": at, "process": "p0", "type": "invoke", "f": "send",
                      "value": value, "partition": partition})
        h.ops.append({"index": len(h.ops), "time": at + 0.5, "process": "p0", "type": "ok", "f": "send",
                      "value": value, "partition": partition, "offset": offset})
    h.ops.append({"index": len(h.ops), "time": 20.0, "process": "p0", "type": "invoke", "f": "send", "value": 5,
                  "partition": 0})  # never acknowledged: partition 0 stalls from 5.5 to the last send
    assert longest_write_stall(h.ops) == {"s": 14.5, "partition": 0, "from": 5.5}
