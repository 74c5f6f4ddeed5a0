"""The producers' librdkafka log (clients.log) read as events, and the explanations built on them."""

from __future__ import annotations

import logging
from pathlib import Path

from faults import clientlog
from faults.checker import check
from faults.explain import describe, explain, score

# Recorded: kbroker seed 277 (2026-12-07, run_cluster.py --producer-debug eos,msg,protocol,topic),
# queue [2]'s leader moving from n3 (epoch 0) to n1 (epoch 1); the lines in between left out. Each
# producer logs the same election; Metadata refreshes repeat the unchanged leaders.
ELECTION = """\
2026-12-07 06:10:39,729 t=13.767941 BROKER [p1#producer-3] [thrd:main]: queue [0]: leader -1 epoch -1 -> leader 1 epoch 0
2026-12-07 06:10:39,730 t=13.768261 BROKER [p1#producer-3] [thrd:main]: queue [2]: leader -1 epoch -1 -> leader 3 epoch 0
2026-12-07 06:10:52,186 t=26.224762 BROKER [p1#producer-3] [thrd:main]: queue [2]: leader 3 epoch 0 -> leader 3 epoch 0
2026-12-07 06:11:00,585 t=34.623877 BROKER [p0#producer-2] [thrd:main]: queue [0]: leader 1 epoch 0 -> leader 1 epoch 0
2026-12-07 06:11:00,585 t=34.623978 METADATA [p0#producer-2] [thrd:main]: Topic queue [2] Leader 1 Epoch 1
2026-12-07 06:11:00,585 t=34.624011 BROKER [p0#producer-2] [thrd:main]: queue [2]: leader 3 epoch 0 -> leader 1 epoch 1
2026-12-07 06:11:00,585 t=34.624043 LEADER [p0#producer-2] [thrd:main]: queue [2]: applying leader-id update 3 -> 1 (epoch 1)
2026-12-07 06:11:00,586 t=34.624422 BROKERUA [p0#producer-2] [thrd:10.77.0.1:41757/3]: queue [2]: broker unavailable: produce: Broker: Not leader for partition
2026-12-07 06:11:00,586 t=34.624795 BROKERUA [p0#producer-2] [thrd:10.77.0.1:41757/3]: queue [2]: broker unavailable: produce: Broker: Not leader for partition
2026-12-07 06:11:00,586 t=34.624672 DRAIN [p0#producer-2] [thrd:10.77.0.1:41757/3]: queue [2] beginning partition drain: drain before retrying
2026-12-07 06:11:00,602 t=34.640450 BROKER [p1#producer-3] [thrd:main]: queue [2]: leader 3 epoch 0 -> leader 1 epoch 1
"""

# Recorded: a single-node run (run_single.py --message-timeout-ms 3000 --producer-debug eos,msg,topic):
# p0's messages time out, it bumps its epoch.
TIMEOUT_BUMP = """\
2026-12-07 06:10:04,578 t=15.868353 TIMEOUT [p0#producer-2] [thrd:127.0.0.1:46067/1]: 127.0.0.1:46067/1: queue [2]: timed out 0+2 message(s) (MsgId 1410..1411): message.timeout.ms exceeded
2026-12-07 06:10:04,578 t=15.868374 DRAIN [p0#producer-2] [thrd:127.0.0.1:46067/1]: Beginning partition drain in state Assigned for PID{Id:1,Epoch:0} epoch bump for 0 partition(s) with in-flight requests: 2 message(s) timed out on queue [2]
2026-12-07 06:10:04,578 t=15.868414 DRAIN [p0#producer-2] [thrd:127.0.0.1:46067/1]: All partitions drained, bumped epoch to PID{Id:1,Epoch:1}
"""

# Recorded: kbroker seed 413 (eighth session), written before the runs named their producers or put
# the history's time on each line.
OLD_FORMAT = """\
2026-12-07 03:06:47,708 IDEMPSTATE [rdkafka#producer-2] [thrd:main]: Idempotent producer state change Init -> RequestPID
2026-12-07 03:06:47,723 DRAIN [rdkafka#producer-2] [thrd:10.77.0.1:43589/1]: queue [1] beginning partition drain: wait for outstanding requests to finish before producing to new leader
2026-12-07 03:08:03,232 DRAIN [rdkafka#producer-2] [thrd:10.77.0.1:34599/3]: Beginning partition drain in state Assigned for PID{Id:0,Epoch:0} epoch bump for 2 partition(s) with in-flight requests: 32 message(s) timed out on queue [0]
"""

# librdkafka's wording for a bump after OUT_OF_ORDER_SEQUENCE_NUMBER on a request that is not the
# first in flight (rdkafka_request.c, "skipped sequence numbers"), written by hand in the recorded
# lines' format: no run of this session logged one.
SKIPPED = ("2026-12-07 06:11:01,100 t=35.100000 DRAIN [p0#producer-2] [thrd:10.77.0.1:39047/1]: Beginning "
           "partition drain in state Assigned for PID{Id:0,Epoch:0} epoch bump for 1 partition(s) with "
           "in-flight requests: skipped sequence numbers\n")


def test_an_election_is_one_event_with_its_leader_and_epoch_whoever_saw_it():
    events = clientlog.parse(ELECTION.splitlines())
    leaders = [(e.time, e.process, e.partition, e.detail["leader"], e.detail["epoch"], e.detail["previous"])
               for e in events if e.kind == "leader"]
    assert leaders == [(13.767941, "p1", 0, 1, 0, [-1, -1]), (13.768261, "p1", 2, 3, 0, [-1, -1]),
                       (34.624011, "p0", 2, 1, 1, [3, 0])]
    errors = [(e.process, e.partition, e.detail) for e in events if e.kind == "produce_error"]
    assert errors == [("p0", 2, {"broker": 3, "error": "Broker: Not leader for partition"})]


def test_an_epoch_bump_carries_librdkafkas_reason_and_its_producer():
    events = clientlog.parse(TIMEOUT_BUMP.splitlines())
    assert [(e.kind, e.process, e.partition) for e in events] == [("timeout", "p0", 2), ("bump", "p0", None),
                                                                  ("bumped", "p0", None)]
    assert events[1].detail == {"reason": "2 message(s) timed out on queue [2]", "reset": False, "pid": 1,
                                "from_epoch": 0}
    assert events[2].detail == {"pid": 1, "epoch": 1}


def test_an_old_log_is_placed_by_its_first_line_and_its_producers_are_unnamed():
    assert clientlog.parse(OLD_FORMAT.splitlines()) == []  # no t= and no anchor: nothing placed
    events = clientlog.parse(OLD_FORMAT.splitlines(), anchor=11.0)
    assert [(round(e.time, 3), e.kind, e.process) for e in events] == [(11.015, "leader", None),
                                                                       (86.524, "bump", None)]
    assert events[0].detail == {"leader": 1, "epoch": None, "previous": None}


def test_the_runners_clients_log_has_the_history_time_and_the_producer(tmp_path: Path):
    handler = logging.FileHandler(tmp_path / "clients.log")
    handler.setFormatter(logging.Formatter(clientlog.FORMAT))
    handler.addFilter(clientlog.history_time_filter(lambda: 35.1))
    logger = logging.getLogger("faults.clients.test")
    logger.addHandler(handler)
    logger.propagate = False
    try:  # what confluent-kafka passes to the logger: "<facility> [<name>] <text>"
        logger.warning("DRAIN [p0#producer-2] [thrd:10.77.0.1:39047/1]: All partitions drained, bumped epoch "
                       "to PID{Id:0,Epoch:1}")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [(e.time, e.kind, e.process, e.detail) for e in clientlog.load(tmp_path / "clients.log")] == [
        (35.1, "bumped", "p0", {"pid": 0, "epoch": 1})]
    assert clientlog.load(tmp_path / "missing.log") == []


def op(index: int, time: float, process: str, type_: str, f: str, **fields) -> dict:
    return {"index": index, "time": time, "process": process, "type": type_, "f": f, **fields}


def duplicate_history() -> list[dict]:
    """p0's value 7 to partition 2 sent before the election of 34.62 s, written twice (offsets 40
    and 43), acknowledged after the bump of 35.1 s; no send of p0 timed out (the history cannot tell
    why it was re-sent). p1's value 8, acknowledged at 20 s, never read: lost."""
    return [op(0, 34.0, "p0", "invoke", "send", value=7, partition=2),
            op(1, 19.5, "p1", "invoke", "send", value=8, partition=2),
            op(2, 20.0, "p1", "ok", "send", value=8, partition=2, offset=39),
            op(3, 36.0, "p0", "ok", "send", value=7, partition=2, offset=43),
            op(4, 40.0, "c", "invoke", "poll"),
            op(5, 40.1, "c", "ok", "poll", values=[[2, 40, 7], [2, 43, 7]])]


def test_a_duplicate_after_a_logged_bump_follows_that_election_and_is_the_clients():
    ops = duplicate_history()
    events = clientlog.parse((ELECTION + SKIPPED).splitlines())
    records = explain(ops, check(ops)["anomalies"], events)
    dup = next(r for r in records if r["anomaly"] == "duplicate")
    assert dup["bumps"] == [{"time": 35.1, "reason": "skipped sequence numbers", "reset": False, "from_epoch": 0}]
    assert dup["follows"] == {"time": 34.624, "leader": 1, "epoch": 1, "previous": [3, 0]}
    assert dup["produce_errors"] == [{"time": 34.624, "broker": 3, "error": "Broker: Not leader for partition"}]
    line = describe(dup)
    assert "skipped sequence numbers" in line and "follows n1 leader at epoch 1 (was n3 at epoch 0)" in line
    lost = next(r for r in records if r["anomaly"] == "lost")
    assert lost["follows"] == {"time": 13.768, "leader": 3, "epoch": 0, "previous": [-1, -1]}
    assert lost["next_election"]["epoch"] == 1  # the election after its acknowledgement

    report = score({}, ops, True, events)
    assert report["duplicates_after_client_timeout"] == 0 and report["duplicates_after_epoch_bump"] == 1
    assert report["broker_anomaly_counts"]["duplicate"] == 0
    assert report["broker_anomaly_counts"]["lost"] == 1  # a loss is never the client's
    assert len(report["explanations"]) == 2


def test_without_the_log_or_with_another_producers_bump_the_duplicate_stays_the_brokers():
    ops = duplicate_history()
    other = SKIPPED.replace("[p0#producer-2]", "[p1#producer-3]")
    for events in ([], clientlog.parse((ELECTION + other).splitlines())):
        report = score({}, ops, True, events)
        assert report["duplicates_after_epoch_bump"] == 0
        assert report["broker_anomaly_counts"]["duplicate"] == 1 and report["broker_valid"] is False
    late = SKIPPED.replace("t=35.100000", "t=36.500000")  # after the value's acknowledgement
    assert score({}, ops, True, clientlog.parse(late.splitlines()))["duplicates_after_epoch_bump"] == 0


def test_a_runs_client_events_are_counted_by_kind_and_reason():
    events = clientlog.parse((ELECTION + TIMEOUT_BUMP + SKIPPED).splitlines())
    assert clientlog.figures(events) == {
        "elections": 3, "epoch_bumps": {"message timeout": 1, "skipped sequence numbers": 1},
        "produce_errors": {"Broker: Not leader for partition": 1}, "fenced": 0}
    assert score({}, duplicate_history(), True, events)["client_events"]["elections"] == 3


def test_an_explanation_names_the_first_bump_and_counts_the_others():
    ops = duplicate_history()
    second = SKIPPED.replace("t=35.100000", "t=35.500000").replace("Epoch:0}", "Epoch:1}")
    events = clientlog.parse((ELECTION + SKIPPED + second).splitlines())
    dup = next(r for r in explain(ops, check(ops)["anomalies"], events) if r["anomaly"] == "duplicate")
    assert len(dup["bumps"]) == 2
    line = describe(dup)
    assert "epoch bump from epoch 0 at 35.1 s: skipped sequence numbers" in line
    assert "1 more bumps before its outcome (skipped sequence numbers)" in line and "from epoch 1" not in line
