"""The stall probe of the cluster runs (scripts/faults/stall.py): what it keeps of librdkafka's
statistics, and that it takes its snapshot only when the wait it watches outlasts its threshold."""

from __future__ import annotations

import copy
import json
import threading

from faults.stall import StallProbe, brief, producer_brief

# librdkafka 2.x statistics (STATISTICS.md), trimmed to the fields the brief reads and a few it drops:
# a producer waiting for its producer id, one broker up with a request awaiting its answer, the
# bootstrap handle, a partition with queued messages and the unassigned queue.
STATS = {
    "age": 20_500_000, "msg_cnt": 41,
    "eos": {"idemp_state": "WaitPID", "idemp_stateage": 19800, "txn_state": "Init", "producer_id": -1,
            "producer_epoch": -1, "epoch_cnt": 0},
    "brokers": {
        "10.77.0.1:4242/bootstrap": {"nodeid": -1, "state": "UP", "stateage": 1000},
        "10.77.0.1:4243/2": {"nodeid": 2, "state": "UP", "stateage": 19_900_000, "outbuf_cnt": 0,
                             "waitresp_cnt": 1, "req_timeouts": 0, "disconnects": 0,
                             "rtt": {"max": 3170, "avg": 1000},
                             "req": {"Produce": 0, "Metadata": 3, "InitProducerId": 12, "ApiVersion": 1}}},
    "topics": {"queue": {"partitions": {
        "0": {"leader": 2, "msgq_cnt": 20, "xmit_msgq_cnt": 0, "msgs_inflight": 0, "acked_msgid": 0, "txmsgs": 0},
        "-1": {"leader": -1, "msgq_cnt": 0, "xmit_msgq_cnt": 0, "msgs_inflight": 0, "acked_msgid": 0}}}},
}


def test_the_brief_names_the_producer_id_wait_the_broker_requests_and_the_queues():
    brief = producer_brief(json.dumps(STATS))
    assert brief["idemp_state"] == "WaitPID" and brief["idemp_state_age_ms"] == 19800
    assert brief["age_s"] == 20.5 and brief["msg_cnt"] == 41 and brief["producer_id"] == -1
    # the bootstrap handle is left out; the requests sent are kept by kind, the ones never sent not
    assert brief["brokers"] == {"10.77.0.1:4243/2": {
        "state": "UP", "state_age_ms": 19900, "outbuf": 0, "waitresp": 1, "req_timeouts": 0, "disconnects": 0,
        "rtt_max_ms": 3, "req": {"Metadata": 3, "InitProducerId": 12, "ApiVersion": 1}}}
    # the unassigned queue only when messages wait in it (the topic's metadata unknown)
    assert brief["partitions"] == {"queue-0": {"leader": 2, "msgq": 20, "xmit_msgq": 0, "inflight": 0,
                                               "acked_msgid": 0}}
    waiting = copy.deepcopy(STATS)
    waiting["topics"]["queue"]["partitions"]["-1"]["msgq_cnt"] = 5
    assert producer_brief(json.dumps(waiting))["partitions"]["queue-unassigned"]["msgq"] == 5


def test_a_wait_that_outlasts_the_threshold_gets_one_snapshot():
    stalls: list[dict] = []
    taken = threading.Event()

    def snapshot() -> dict:
        taken.set()
        return {"acked": [0, 0]}

    with StallProbe("first-acks", snapshot, stalls, after_s=0.0):
        assert taken.wait(30)  # the wait being watched lasts until the snapshot was taken
    assert len(stalls) == 1
    assert stalls[0]["wait"] == "first-acks" and stalls[0]["acked"] == [0, 0] and stalls[0]["after_s"] >= 0


def test_a_wait_over_before_the_threshold_gets_none_and_a_failing_snapshot_is_recorded():
    stalls: list[dict] = []
    with StallProbe("progress-0", lambda: {"never": True}, stalls, after_s=3600.0):
        pass
    assert stalls == []

    def broken() -> dict:
        raise RuntimeError("cluster gone")

    with StallProbe("progress-1", broken, stalls, after_s=0.0) as probe:
        probe._thread.join(30)  # the snapshot ran (and failed) before the wait ends
    assert stalls[0]["wait"] == "progress-1" and "cluster gone" in stalls[0]["error"]


def test_the_one_line_brief_names_the_wait_the_producer_state_and_the_partitions():
    entry = {"wait": "first-acks", "after_s": 20.0, "acked": [0, 0], "producers": {"p0": producer_brief(json.dumps(STATS))},
             "topic": {"brokers": [1, 2, 3], "partitions": {"0": {"leader": 2, "replicas": [2, 3, 1], "isrs": [2, 3]}}},
             "nodes": {"n1": {"state": "S"}, "n2": {"alive": True, "paused": True}}}
    line = brief(entry)
    assert line.startswith("first-acks after 20.0 s, acked [0, 0]; p0 WaitPID pid -1 queued ")
    assert "2:UP waitresp=1 timeouts=0 req={'Metadata': 3, 'InitProducerId': 12, 'ApiVersion': 1}" in line
    assert "partitions 0:leader 2 isr [2, 3]" in line and line.endswith("nodes n1:S n2:paused")
    assert brief({"wait": "progress-2", "after_s": 20.1, "error": "boom"}) == "progress-2 after 20.1 s: snapshot failed: boom"
