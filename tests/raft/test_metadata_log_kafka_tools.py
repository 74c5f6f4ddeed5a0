"""Kafka 4.4's own kafka-dump-log (DumpLogSegments --cluster-metadata-decoder) reads the metadata
log and the .checkpoint snapshots kbroker writes, and prints the records written.

The tools come from the jars ``scripts/reference_kafka.py`` resolves (as tests/tools does); one JVM
run reads both files.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import reference_kafka

from kbroker.controller.quorum import QuorumController
from kbroker.log import PartitionLog
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.features import SUPPORTED_FEATURES
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.metadata_log import METADATA_LOG_CONFIG, MetadataLog, snapshot_file_name
from kbroker.metadata.new_topic import NewTopic
from kbroker.metadata.snapshot import image_to_snapshot
from kbroker.raft.log import Entry, LeaderChange


def dump_log(*files: Path) -> str:
    res = reference_kafka.run_tool("org.apache.kafka.tools.DumpLogSegments",
                                   ["--cluster-metadata-decoder", "--files", ",".join(map(str, files))])
    assert res.returncode == 0, f"kafka-dump-log exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def sections(stdout: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        m = re.match(r"^Dumping (\S+)$", line)
        if m:
            current = Path(m.group(1)).name
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def records_printed(lines: list[str]) -> list[tuple[int, str, dict]]:
    """(offset, kind, json) per record line: kind is the metadata record type, or the control
    record's name (LeaderChange, SnapshotHeader, ...)."""
    out = []
    for line in lines:
        m = re.match(r"^\| offset: (\d+) .* payload: (\{.*\})$", line)
        if m:
            payload = json.loads(m.group(2))
            out.append((int(m.group(1)), payload["type"], payload["data"]))
            continue
        m = re.match(r"^\| offset: (\d+) .* headerKeys: \[\] (\w+):? (\{.*\})$", line)
        if m:
            out.append((int(m.group(1)), m.group(2), json.loads(m.group(3))))
    return out


def batches_printed(lines: list[str]) -> list[tuple[int, int, int, bool]]:
    return [(int(a), int(b), int(e), c == "true") for a, b, e, c in re.findall(
        r"^baseOffset: (\d+) lastOffset: (\d+) .* partitionLeaderEpoch: (-?\d+) isTransactional: \w+ "
        r"isControl: (\w+)", "\n".join(lines), re.M)]


def test_kafka_dump_log_reads_our_segments_and_checkpoints(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    # today's single-node controller writes the start of the log ...
    plog = PartitionLog.open(d, METADATA_LOG_CONFIG)
    image = MetadataImage()
    qc = QuorumController(1, plog, image)
    qc.bootstrap_if_empty()
    qc.register_broker([("PLAINTEXT", "localhost", 9092)])
    qc.commit(qc.plan_topic(NewTopic("orders", 2, 1, configs={"retention.ms": "1000"}), 1, 1))
    qc.upgrade_kraft_version(1, [("CONTROLLER", "localhost", 9093)], uuid.UUID(int=7))
    single_end = plog.log_end_offset
    plog.close()
    # ... and a Raft leader of epoch 2 continues it through MetadataLog
    log = MetadataLog(d, voters=(1, 2, 3))
    assert log.end_offset == single_end
    new_topic = mr.TopicRecord(name="payments", topic_id=uuid.UUID(int=42))
    # (the leader of epoch 2 was elected by voters 2 and 3: Kafka's GrantingVoters)
    log.append([Entry(2, LeaderChange(2, (1, 2, 3), (2, 3)), control=True)])
    log.append([Entry(2, mr.encode_frame(new_topic), batch_end=False),
                Entry(2, mr.encode_frame(mr.ProducerIdsRecord(broker_id=1, broker_epoch=3, next_producer_id=1000)))])
    log.flush()
    for o in range(single_end, log.end_offset):
        e = log.entry(o)
        if not e.control:
            image.apply(mr.decode_frame(e.value), o)
    image.apply_kraft_version(1, log.end_offset - 1)
    snap = log.take_snapshot(log.end_offset, image_to_snapshot(image))
    [segment] = sorted(d.glob("*.log"))
    checkpoint = d / snapshot_file_name(snap.end_offset, snap.epoch)
    assert checkpoint.exists()
    log.close()

    out = sections(dump_log(segment, checkpoint))
    seg_lines, snap_lines = out[segment.name], out[checkpoint.name]

    # the segment: the single-node controller's batches (epoch 1), then the leader's (epoch 2)
    seg_records = records_printed(seg_lines)
    kinds = [k for _o, k, _d in seg_records]
    features = len(image.features)
    assert kinds[:single_end] == ["FEATURE_LEVEL_RECORD"] * features + [
        "REGISTER_BROKER_RECORD", "TOPIC_RECORD", "CONFIG_RECORD", "PARTITION_RECORD", "PARTITION_RECORD",
        "KRaftVersion", "KRaftVoters"]
    assert seg_records[single_end - 2][2]["kRaftVersion"] == 1
    [voter] = seg_records[single_end - 1][2]["voters"]
    assert voter["voterId"] == 1 and voter["endpoints"][0]["port"] == 9093
    assert [o for o, _k, _d in seg_records] == list(range(single_end + 3))
    assert kinds[single_end:] == ["LeaderChange", "TOPIC_RECORD", "PRODUCER_IDS_RECORD"]
    leader_change = seg_records[single_end][2]
    assert leader_change["leaderId"] == 2 and [v["voterId"] for v in leader_change["voters"]] == [1, 2, 3]
    assert [v["voterId"] for v in leader_change["grantingVoters"]] == [2, 3]
    assert seg_records[single_end + 1][2] == {"name": "payments", "topicId": "AAAAAAAAAAAAAAAAAAAAKg"}
    assert seg_records[single_end + 2][2] == {"brokerId": 1, "brokerEpoch": 3, "nextProducerId": 1000}
    orders = [d for _o, k, d in seg_records if k == "TOPIC_RECORD" and d["name"] == "orders"]
    assert len(orders) == 1
    parts = [d for _o, k, d in seg_records if k == "PARTITION_RECORD"]
    assert [p["partitionId"] for p in parts] == [0, 1] and all(p["replicas"] == [1] for p in parts)
    assert batches_printed(seg_lines)[-2:] == [(single_end, single_end, 2, True),
                                               (single_end + 1, single_end + 2, 2, False)]
    assert {e for _a, _b, e, _c in batches_printed(seg_lines)[:-2]} == {1}
    assert batches_printed(seg_lines)[-3] == (single_end - 2, single_end - 1, 1, True)

    # the checkpoint: header (with kraft.version), the image's records, footer; all of epoch 2
    assert f"Snapshot end offset: {snap.end_offset}, epoch: 2" in snap_lines
    snap_records = records_printed(snap_lines)
    assert snap_records[0][1] == "SnapshotHeader" and snap_records[-1][1] == "SnapshotFooter"
    assert snap_records[1][1] == "KRaftVersion" and snap_records[1][2]["kRaftVersion"] == 1
    assert [o for o, _k, _d in snap_records] == list(range(len(snap_records)))
    body = [(k, d) for _o, k, d in snap_records[2:-1]]
    assert [k for k, _d in body] == [
        "FEATURE_LEVEL_RECORD", *["FEATURE_LEVEL_RECORD"] * (len(image.features) - 1), "REGISTER_BROKER_RECORD",
        "TOPIC_RECORD", "PARTITION_RECORD", "PARTITION_RECORD", "TOPIC_RECORD", "CONFIG_RECORD", "PRODUCER_IDS_RECORD",
    ]
    assert body[0][1]["name"] == "metadata.version"
    # the broker's registration comes back whole, its supported features included
    [registered] = [d for _o, k, d in seg_records if k == "REGISTER_BROKER_RECORD"]
    assert [d for k, d in body if k == "REGISTER_BROKER_RECORD"] == [registered]
    assert len(registered["features"]) == len(SUPPORTED_FEATURES) > 0
    assert [d["name"] for k, d in body if k == "TOPIC_RECORD"] == ["orders", "payments"]
    assert [d for k, d in body if k == "CONFIG_RECORD"] == [
        {"resourceType": 2, "resourceName": "orders", "name": "retention.ms", "value": "1000"}]
    assert body[-1][1] == {"brokerId": -1, "brokerEpoch": -1, "nextProducerId": 1000}
    assert {e for _a, _b, e, _c in batches_printed(snap_lines)} == {2}


def test_kafka_storage_format_checkpoint_opens_as_a_metadata_log(tmp_path):
    """kafka-storage format --standalone (Kafka 4.4) writes the bootstrap snapshot
    00000000000000000000-0000000000.checkpoint: MetadataLog opens it, and its records load into an
    image (the bootstrap features, kraft.version 1 from its KRaftVersionRecord)."""
    from kbroker.metadata.metadata_log import decode_snapshot
    from kbroker.metadata.snapshot import load_snapshot
    from kbroker_protocol.messages.data.voters_record import VotersRecord
    from kbroker_protocol.records import ControlType

    data_dir = tmp_path / "data"
    props = tmp_path / "server.properties"
    props.write_text("process.roles=controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=127.0.0.1:19093\n"
                     "listeners=CONTROLLER://127.0.0.1:19093\ncontroller.listener.names=CONTROLLER\n"
                     f"log.dirs={data_dir}\n")
    res = reference_kafka.run_tool("kafka.tools.StorageTool", [
        "format", "--cluster-id", "q1bPXZ2eQWGCNRA8B4dUWg", "--config", str(props), "--standalone"])
    assert res.returncode == 0, f"kafka-storage format exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    d = data_dir / "__cluster_metadata-0"
    log = MetadataLog(d)
    assert (log.start_offset, log.end_offset, log.snapshot.snapshot_id) == (0, 0, (0, 0))
    content = decode_snapshot(log.snapshot.data)
    assert [c.type for c in content.control_records] == [ControlType.KRAFT_VERSION, ControlType.KRAFT_VOTERS]
    [voter] = VotersRecord.decode(memoryview(content.control_records[1].value), 0).voters
    assert voter.voter_id == 1 and [(e.name, e.port) for e in voter.endpoints] == [("CONTROLLER", 19093)]
    image = load_snapshot(log.snapshot.data, 0)
    assert image.kraft_version == 1 and image.features["metadata.version"] > 0
    # and the log continues it: a leader of epoch 1 appends after the bootstrap snapshot
    log.append([Entry(1, 1, control=True)])
    log.flush()
    log.close()
    again = MetadataLog(d)
    assert again.read(0, 5) == (Entry(1, 1, control=True),) and again.snapshot.snapshot_id == (0, 0)
