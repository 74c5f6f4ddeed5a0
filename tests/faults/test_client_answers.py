"""``client_answers.py``: the producers' NOT_LEADER answers and disk-full failures set against the
nodes' logs and the nemesis, on a run folder made of lines recorded in the tenth session's runs
(librdkafka 2.16 debug lines, kbroker's and Kafka's log lines). No root needed."""

from __future__ import annotations

import json
from pathlib import Path

from faults import client_answers

# history time t = wall - 06:10:26.000 (the clients.log lines carry both)
CLIENTS = """\
2026-12-07 06:10:26,100 t=0.100000 SEND [p0#producer-2] [thrd:10.77.0.1:41757/3]: 10.77.0.1:41757/3: Sent ProduceRequest (v10, 112 bytes @ 0, CorrId 1)
2026-12-07 06:10:47,186 t=21.186000 MSGSET [p0#producer-2] [thrd:10.77.0.1:41757/3]: 10.77.0.1:41757/3: queue [2]: MessageSet with 1 message(s) (MsgId 3326, BaseSeq 3325) encountered error: Broker: Disk error when trying to access log file on disk (actions Refresh,Retry,MsgNotPersisted)
2026-12-07 06:10:47,186 t=21.186100 BROKERUA [p0#producer-2] [thrd:10.77.0.1:41757/3]: queue [2]: broker unavailable: produce: Broker: Disk error when trying to access log file on disk
2026-12-07 06:10:47,275 t=21.275000 BROKERUA [p1#producer-3] [thrd:10.77.0.1:41757/3]: queue [2]: broker unavailable: produce: Local: Broker transport failure
2026-12-07 06:10:47,276 t=21.276000 BROKERUA [p1#producer-3] [thrd:10.77.0.1:41757/3]: queue [2]: broker unavailable: produce: Local: Broker transport failure
2026-12-07 06:11:00,581 t=34.581000 RECV [p0#producer-2] [thrd:10.77.0.1:41757/3]: 10.77.0.1:41757/3: Received ApiVersionResponse (v3, 730 bytes, CorrId 106, rtt 8346.17ms)
2026-12-07 06:11:00,586 t=34.586000 BROKERUA [p0#producer-2] [thrd:10.77.0.1:41757/3]: queue [2]: broker unavailable: produce: Broker: Not leader for partition
2026-12-07 06:11:00,586 t=34.586100 BROKERUA [p0#producer-2] [thrd:10.77.0.1:41757/3]: queue [2]: broker unavailable: produce: Broker: Not leader for partition
2026-12-07 06:11:10,000 t=44.000000 RECV [p1#producer-3] [thrd:10.77.0.1:39047/1]: 10.77.0.1:39047/1: Received ApiVersionResponse (v3, 730 bytes, CorrId 9, rtt 2.10ms)
2026-12-07 06:11:10,200 t=44.200000 BROKERUA [p1#producer-3] [thrd:10.77.0.1:39047/1]: queue [0]: broker unavailable: produce: Broker: Not leader for partition
2026-12-07 06:11:20,000 t=54.000000 BROKERUA [p1#producer-3] [thrd:10.77.0.1:39643/2]: queue [1]: broker unavailable: produce: Broker: Not leader for partition
2026-12-07 06:11:30,000 t=64.000000 BROKERUA [p0#producer-2] [thrd:10.77.0.1:39047/1]: queue [0]: broker unavailable: produce: Broker: Not leader for partition
"""

N1 = """\
2026-12-07 06:10:39,528 INFO kbroker.replication: queue-0: leader at epoch 0 from offset 0, partition epoch 0, ISR [1, 2, 3] (previous leader -1, epoch -1)
2026-12-07 06:11:10,100 INFO kbroker.replication: queue-0: follower of 2 at epoch 1 from offset 900, high watermark 880 (previous leader 1)
"""

N2 = """\
[2026-12-07 06:10:39,600] INFO [Broker id=2] Follower queue-1 starts at leader epoch 0 from offset 0 with partition epoch 0 and high watermark 0. Current leader is 1. Previous leader None and previous leader epoch was -1. (state.change.logger)
[2026-12-07 06:11:25,000] INFO [Broker id=2] Leader queue-1 with topic id Some(_hKcTj1yRXSY2S68lP6c6w) starts at leader epoch 1 from offset 700 with partition epoch 2, high watermark 650, ISR [2,3], adding replicas [] and removing replicas [] . Previous leader Some(1) and previous leader epoch was 0. (state.change.logger)
"""

N3 = """\
2026-12-07 06:10:47,186 ERROR kbroker.log.log_manager: Error while appending to queue-2 in dir /x/n3/data: [Errno 28] No space left on device
2026-12-07 06:10:47,186 CRITICAL kbroker.log.log_manager: Shutdown broker because all log dirs in /x/n3/data have failed
2026-12-07 06:10:58,622 INFO kbroker.replication: queue-2: follower of 1 at epoch 1 from offset 577, high watermark 91 (previous leader 3)
"""


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run-277"
    for name, text, log in (("n1", N1, "stdout.log"), ("n2", N2, "server.log"), ("n3", N3, "stdout.log")):
        (run / "nodes" / name).mkdir(parents=True)
        (run / "nodes" / name / log).write_text(text)
    (run / "clients.log").write_text(CLIENTS)
    ops = [
        {"process": "nemesis", "type": "info", "f": "fault", "id": 1, "kind": "disk-full", "nodes": ["n3"], "time": 20.5},
        {"process": "nemesis", "type": "info", "f": "fault", "id": 2, "kind": "restart", "nodes": ["n1"], "time": 63.2},
    ]
    for partition, times in ((2, [20.0, 20.9, 33.1]), (0, [20.0, 21.0, 22.0]), (1, [10.0, 40.0])):
        ops += [{"process": "p0", "type": "ok", "f": "send", "partition": partition, "value": 1, "time": t}
                for t in times]
    (run / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in ops))
    return run


def test_each_not_leader_episode_gets_its_cause(tmp_path: Path) -> None:
    rows = client_answers.not_leader(client_answers.Run(_run(tmp_path)))
    assert [(r["t"], r["producer"], r["partition"], r["node"], r["lines"], r["cause"]) for r in rows] == [
        (34.586, "p0", 2, 3, 2, "held connection"),  # ApiVersions answered after 8.3 s, just before
        (44.2, "p1", 0, 1, 1, "stale metadata"),  # n1 gave queue-0 up at 44.1; a quick ApiVersions
        (54.0, "p1", 1, 2, 1, "metadata ahead"),  # Kafka's n2 leads queue-1 only from 59.0
        (64.0, "p0", 0, 1, 1, "controlled shutdown"),  # n1's restart began at 63.2
    ]
    assert rows[0]["api_versions_wait_s"] == 8.35
    assert rows[0]["node_state"] == {"role": "follower", "epoch": 1, "since_s": 1.964}
    assert rows[2]["node_state"]["role"] == "follower"


def test_a_disk_full_counts_what_the_producers_saw_and_the_stall(tmp_path: Path) -> None:
    (row,) = client_answers.disk_full(client_answers.Run(_run(tmp_path)))
    assert row["node"] == 3 and row["halted_after_s"] == 0.69
    assert row["storage_error"] == {"lines": 1, "pairs": 1}
    assert row["dropped_connection"] == {"lines": 2, "pairs": 1}
    assert row["not_leader"] == {"lines": 2, "pairs": 1}  # within 30 s of the fill, from n3
    # the halt at 21.186: partition 2 acknowledged at 20.9, then at 33.1; partition 1 10.0 -> 40.0
    assert (row["stall_s"], row["stall_partition"]) == (30.0, 1)


def test_the_command_line_sums_the_runs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = _run(tmp_path)
    assert client_answers.main(["not-leader", "--summary", str(run)]) == 0
    assert capsys.readouterr().out.strip() == (
        "episodes 4: held connection 1, stale metadata 1, metadata ahead 1, controlled shutdown 1")
    assert client_answers.main(["disk-full", "--summary", str(run)]) == 0
    out = capsys.readouterr().out
    assert "disk-full 1, halted 1, storage_error lines 1" in out and "longest 30.00 s" in out
