"""MetadataLog: Kafka's segment format for __cluster_metadata-0, and the data dirs of the
single-node controller (QuorumController.commit) opened as a Raft log."""

from __future__ import annotations

import uuid

import pytest

from kbroker.controller.quorum import QuorumController
from kbroker.log import PartitionLog
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.metadata_log import (
    METADATA_LOG_CONFIG,
    ControlRecord,
    MetadataLog,
    MetadataLogError,
    decode_snapshot,
    encode_snapshot,
    snapshot_file_name,
)
from kbroker.metadata.new_topic import NewTopic
from kbroker.raft.log import Entry, Snapshot
from kbroker_protocol.messages.data.kraft_version_record import KRaftVersionRecord
from kbroker_protocol.messages.data.leader_change_message import LeaderChangeMessage
from kbroker_protocol.messages.data.voters_record import VotersRecord
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import ControlType, decode_batch, parse_control_record


def single_node_dir(path) -> tuple[list, int]:
    """A metadata log written by today's single-node controller; returns the records it
    committed (in order) and the kraft.version control batch's first offset."""
    plog = PartitionLog.open(path, METADATA_LOG_CONFIG)
    qc = QuorumController(1, plog, MetadataImage())
    qc.bootstrap_if_empty()
    qc.register_broker([("PLAINTEXT", "localhost", 9092)])
    qc.commit(qc.plan_topic(NewTopic("t1", 3, 1, configs={"cleanup.policy": "compact"}), 1, 1))
    kraft_at = plog.log_end_offset
    qc.upgrade_kraft_version(1, [("CONTROLLER", "localhost", 9093)], uuid.uuid4())
    qc.commit([mr.ProducerIdsRecord(broker_id=1, broker_epoch=qc.image.brokers[1].epoch, next_producer_id=1000)])
    committed = []
    for header, raw in plog.iter_batches():
        if not header.is_control:
            committed += [mr.decode_frame(r.value) for r in decode_batch(raw).records]
    plog.close()
    return committed, kraft_at


def test_single_node_data_dir_opens_with_the_same_records(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    committed, kraft_at = single_node_dir(d)
    log = MetadataLog(d)
    entries = log.read(0, 1000)
    assert log.start_offset == 0 and log.end_offset == len(entries) == len(committed) + 2
    assert {e.epoch for e in entries} == {1}  # QuorumController.term
    data = [mr.decode_frame(e.value) for e in entries if not e.control]
    assert data == committed
    controls = [(i, e.value) for i, e in enumerate(entries) if e.control]
    assert [(i, c.type) for i, c in controls] == [(kraft_at, ControlType.KRAFT_VERSION),
                                                  (kraft_at + 1, ControlType.KRAFT_VOTERS)]
    assert KRaftVersionRecord.decode(memoryview(controls[0][1].value), 0).kraft_version == 1
    assert [v.voter_id for v in VotersRecord.decode(memoryview(controls[1][1].value), 0).voters] == [1]
    assert log.end_offset_for_epoch(1) == (1, log.end_offset)
    assert log.end_offset_for_epoch(0) == (-1, 0)

    # a Raft leader of epoch 2 continues it; the control records are written back unchanged
    more = [mr.encode_frame(mr.TopicRecord(name="t2", topic_id=uuid.uuid4()))]
    end = log.end_offset
    log.append([Entry(2, 7, control=True), Entry(2, more[0])])
    log.flush()
    log.close()
    reopened = MetadataLog(d)
    assert reopened.read(0, 1000) == (*entries, Entry(2, 7, control=True), Entry(2, more[0]))
    reopened.close()

    # and today's controller replays the result: every record, and kraft.version
    plog = PartitionLog.open(d, METADATA_LOG_CONFIG)
    image = MetadataImage()
    assert QuorumController(1, plog, image).replay() == len(committed) + 1
    assert set(image.topics) == {"t1", "t2"} and image.kraft_version == 1
    assert image.topics["t1"].configs == {"cleanup.policy": "compact"}
    assert image.offset == end + 1
    plog.close()


def test_batches_as_kafka_writes_them(tmp_path):
    log = MetadataLog(tmp_path / "__cluster_metadata-0", voters=(3, 1, 2))
    frames = [mr.encode_frame(mr.FeatureLevelRecord(name="metadata.version", feature_level=27))] * 3
    log.append([Entry(4, 1, control=True)])
    # one batch per proposal (the entries up to one whose batch_end is True)
    log.append([Entry(4, f, batch_end=i == 2) for i, f in enumerate(frames)])
    log.append([Entry(4, frames[0]), Entry(5, 1, control=True), Entry(5, frames[1])])  # split by epoch and kind
    log.flush()
    batches = [(h.base_offset, h.last_offset, h.partition_leader_epoch, h.is_control, raw)
               for h, raw in log.partition_log.iter_batches()]
    assert [b[:4] for b in batches] == [(0, 0, 4, True), (1, 3, 4, False), (4, 4, 4, False), (5, 5, 5, True),
                                        (6, 6, 5, False)]
    [lcm_record] = decode_batch(batches[0][4]).records
    assert parse_control_record(lcm_record).type == ControlType.LEADER_CHANGE
    lcm = LeaderChangeMessage.decode(memoryview(lcm_record.value), 0)
    assert lcm.leader_id == 1 and [v.voter_id for v in lcm.voters] == [1, 2, 3]
    assert [r.value for r in decode_batch(batches[1][4]).records] == frames
    # the leader epoch cache of the partition log knows the epochs (leader-epoch-checkpoint)
    assert log.partition_log.leader_epochs.entries() == [(4, 0), (5, 5)]
    log.close()


def test_snapshot_files_as_kafka_names_and_lays_them_out(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    log.append([Entry(3, bytes([i])) for i in range(10)])
    log.flush()
    frames = [mr.encode_frame(mr.ProducerIdsRecord(broker_id=1, broker_epoch=5, next_producer_id=n)) for n in range(3)]
    snap = log.take_snapshot(7, frames)
    assert snap.snapshot_id == (7, 3)
    names = sorted(p.name for p in d.iterdir() if p.name.endswith(".checkpoint") and p.name[0] == "0")
    assert names == ["00000000000000000007-0000000003.checkpoint"] == [snapshot_file_name(7, 3)]
    raw = (d / names[0]).read_bytes()
    assert raw == snap.data
    content = decode_snapshot(raw)
    assert content.records == frames and content.control_records == []
    # header, records, footer; offsets from 0; every batch has the snapshot's epoch
    headers = [h for _, h in iter_batch_headers(raw)]
    assert [(h.base_offset, h.last_offset, h.is_control, h.partition_leader_epoch) for h in headers] == [
        (0, 0, True, 3), (1, 3, False, 3), (4, 4, True, 3)]
    assert not list(d.glob("*.part"))
    # the log start moved to the snapshot's end; a second snapshot replaces the first file
    assert log.partition_log.log_start_offset == 7
    log.take_snapshot(10, raw)  # the content of a .checkpoint is taken as is
    assert sorted(p.name for p in d.glob("0*.checkpoint")) == [snapshot_file_name(10, 3)]
    log.close()


def test_old_segments_deleted_below_the_snapshot(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    for i in range(5):
        log.append([Entry(1, bytes([i]) * 10)])
        log.flush()
        log.partition_log.roll()
    assert len(list(d.glob("*.log"))) == 6
    log.take_snapshot(3, [b"s"])
    assert sorted(int(p.name[:20]) for p in d.glob("*.log")) == [3, 4, 5]
    log.close()
    again = MetadataLog(d)
    assert (again.start_offset, again.end_offset) == (3, 5)
    assert again.read(3, 5) == (Entry(1, b"\x03" * 10), Entry(1, b"\x04" * 10))


def test_bad_snapshot_data_is_refused_and_nothing_changes(tmp_path):
    log = MetadataLog(tmp_path / "__cluster_metadata-0")
    log.append([Entry(1, b"a"), Entry(1, b"b")])
    log.flush()
    complete = encode_snapshot([b"x"], 1)
    *_, (footer_at, _footer) = iter_batch_headers(complete)
    with pytest.raises(MetadataLogError, match="SnapshotFooterRecord"):
        log.take_snapshot(1, complete[: footer_at])  # without its footer batch
    with pytest.raises(MetadataLogError, match="damaged"):
        log.install_snapshot(Snapshot(9, 1, complete[:-1] + bytes([complete[-1] ^ 1])))
    with pytest.raises(TypeError):
        log.take_snapshot(1, {"not": "records"})
    with pytest.raises(MetadataLogError, match="epoch"):
        log.take_snapshot(1, encode_snapshot([b"x"], 2))  # the entry before offset 1 has epoch 1
    assert (log.start_offset, log.end_offset, log.snapshot) == (0, 2, None)
    assert not list(log.directory.glob("0*.checkpoint"))


def test_leftover_partial_snapshot_is_removed(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    log.append([Entry(1, b"a")])
    log.flush()
    log.close()
    (d / "00000000000000000001-0000000001-abc.checkpoint.part").write_bytes(b"partial")
    again = MetadataLog(d)
    assert again.snapshot is None and again.end_offset == 1
    assert not list(d.glob("*.part"))


def test_log_without_the_snapshot_of_its_prefix_is_refused(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    log.append([Entry(1, bytes([i])) for i in range(4)])
    log.flush()
    log.take_snapshot(2, [b"s"])
    log.close()
    for p in d.glob("0*.checkpoint"):
        p.unlink()
    plog = PartitionLog.open(d, METADATA_LOG_CONFIG)
    plog.high_watermark = plog.log_end_offset
    plog.advance_log_start(3)
    plog.close()
    with pytest.raises(MetadataLogError, match="no snapshot"):
        MetadataLog(d)


def test_control_record_values_round_trip(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    kv = ControlRecord(ControlType.KRAFT_VERSION, bytes(KRaftVersionRecord(version=0, kraft_version=1).encode(0)))
    log.append([Entry(2, kv, control=True)])
    log.flush()
    log.close()
    assert MetadataLog(d).read(0, 1) == (Entry(2, kv, control=True),)


class Killed(Exception):
    pass


def test_crash_inside_a_cut_within_a_batch_keeps_the_records_below_it(tmp_path, monkeypatch):
    """A cut inside a batch removes the batch and writes its kept records again: a process
    killed between the two finds them in kbroker-truncation.batch on open, and the log is whole."""
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    log.append([Entry(1, bytes([i]), batch_end=i == 5) for i in range(6)])  # one proposal, one batch
    log.flush()
    plog = log.partition_log
    real_append = plog.append

    def killed_append(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(plog, "append", killed_append)
    with pytest.raises(Killed):
        log.truncate_to(4)
    assert plog.log_end_offset == 0  # the batch is cut, its kept records not written back yet
    assert (d / "kbroker-truncation.batch").exists()
    monkeypatch.setattr(plog, "append", real_append)
    plog.close(clean=False)
    reopened = MetadataLog(d)
    assert reopened.read(0, 10) == tuple(Entry(1, bytes([i])) for i in range(4))
    assert not (d / "kbroker-truncation.batch").exists()
    reopened.append([Entry(2, b"next")])
    reopened.flush()
    reopened.close()
    assert MetadataLog(d).read(0, 10) == (*(Entry(1, bytes([i])) for i in range(4)), Entry(2, b"next"))


def test_a_left_over_truncation_file_after_a_completed_cut_is_dropped(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    log.append([Entry(1, bytes([i]), batch_end=i == 5) for i in range(6)])  # one proposal, one batch
    log.flush()
    log.truncate_to(4)
    log.close()
    # as if the process died after writing the cut's new batch, before removing the file
    from kbroker.metadata.metadata_log import encode_batches

    (d / "kbroker-truncation.batch").write_bytes(encode_batches(0, [Entry(1, bytes([i]), batch_end=i == 3) for i in range(4)]))
    reopened = MetadataLog(d)
    assert reopened.read(0, 10) == tuple(Entry(1, bytes([i])) for i in range(4))
    assert not (d / "kbroker-truncation.batch").exists()


def test_a_log_going_back_in_epochs_is_cut_there(tmp_path):
    """Batches whose epochs go back cannot be a Raft log (MetadataLog never writes them): the log
    ends before the first one, durably, and is logged."""
    from kbroker.metadata.metadata_log import METADATA_LOG_CONFIG as RAFT_LOG_CONFIG
    from kbroker.metadata.metadata_log import encode_batches

    d = tmp_path / "__cluster_metadata-0"
    plog = PartitionLog.open(d, RAFT_LOG_CONFIG)
    plog.append(encode_batches(0, [Entry(3, b"a"), Entry(3, b"b")]), assign_offsets=False)
    plog.append(encode_batches(2, [Entry(2, b"c")]), assign_offsets=False)
    plog.append(encode_batches(3, [Entry(4, b"d")]), assign_offsets=False)
    plog.flush()
    plog.close()
    log = MetadataLog(d)
    assert log.read(0, 10) == (Entry(3, b"a"), Entry(3, b"b"))
    assert log.partition_log.log_end_offset == 2
    log.close()
    assert MetadataLog(d).read(0, 10) == (Entry(3, b"a"), Entry(3, b"b"))


def test_kraft_version_and_voters_records_travel_in_fetch_unchanged(tmp_path):
    """A leader whose log holds the single-node controller's KRaftVersion/Voters control records
    sends them in Fetch (kbroker.raft.wire) and a follower's MetadataLog writes them as they were."""
    from kbroker.raft.wire import decode_entries, encode_entries

    d = tmp_path / "__cluster_metadata-0"
    single_node_dir(d)
    leader = MetadataLog(d)
    entries = leader.read(0, 1000)
    wire = encode_entries(0, entries, voters=(1,))
    assert decode_entries(wire, 0) == entries
    follower = MetadataLog(tmp_path / "follower" / "__cluster_metadata-0")
    follower.append(list(decode_entries(wire, 0)))
    follower.flush()
    ours = [(h.base_offset, h.is_control, [(r.key, r.value) for r in decode_batch(raw).records])
            for h, raw in follower.partition_log.iter_batches() if h.is_control]
    theirs = [(h.base_offset, h.is_control, [(r.key, r.value) for r in decode_batch(raw).records])
              for h, raw in leader.partition_log.iter_batches() if h.is_control]
    assert ours == theirs and len(theirs) == 1


def test_cut_inside_a_batch_that_began_below_the_snapshot(tmp_path):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    log.append([Entry(1, bytes([i]), batch_end=i == 5) for i in range(6)])  # one proposal, one batch
    log.flush()
    log.take_snapshot(2, [b"s"])
    assert log.partition_log.log_start_offset == 2
    log.truncate_to(4)
    assert log.partition_log.log_start_offset == 2 and log.partition_log.log_end_offset == 4
    log.close()
    again = MetadataLog(d)
    assert (again.start_offset, again.read(2, 10)) == (2, (Entry(1, b"\x02"), Entry(1, b"\x03")))


def test_records_going_back_before_the_snapshots_epoch_are_cut(tmp_path):
    """A log whose records after the snapshot have an older epoch than the snapshot's (not a log
    MetadataLog writes) keeps only what comes before them."""
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    log.append([Entry(5, b"a"), Entry(5, b"b")])
    log.flush()
    log.take_snapshot(2, [b"s"])
    log.close()
    from kbroker.metadata.metadata_log import METADATA_LOG_CONFIG as RAFT_LOG_CONFIG
    from kbroker.metadata.metadata_log import encode_batches

    plog = PartitionLog.open(d, RAFT_LOG_CONFIG)
    plog.append(encode_batches(2, [Entry(3, b"old")]), assign_offsets=False)
    plog.flush()
    plog.close()
    reopened = MetadataLog(d)
    assert (reopened.start_offset, reopened.end_offset, reopened.last_epoch) == (2, 2, 5)
    assert reopened.partition_log.log_end_offset == 2 and reopened.partition_log.log_start_offset == 2


@pytest.mark.parametrize("clean", [True, False], ids=["after-clean-close", "after-crash"])
def test_a_damaged_batch_inside_the_log_is_refused_with_the_reason(tmp_path, clean):
    d = tmp_path / "__cluster_metadata-0"
    log = MetadataLog(d)
    for i in range(3):
        log.append([Entry(1, b"value%d" % i)])
        log.flush()
    log.close()
    if not clean:
        (d / ".kafka_cleanshutdown").unlink()
    segment = d / "00000000000000000000.log"
    raw = bytearray(segment.read_bytes())
    raw[raw.index(b"value0")] ^= 0xFF
    segment.write_bytes(raw)
    with pytest.raises(MetadataLogError, match="00000000000000000000.log at offset 0.*CRC"):
        MetadataLog(d)
    assert segment.read_bytes() == raw  # nothing cut or lost: the damage is for a person to look at


def test_a_log_with_a_gap_in_offsets_is_refused(tmp_path):
    from kbroker.metadata.metadata_log import METADATA_LOG_CONFIG as RAFT_LOG_CONFIG
    from kbroker.metadata.metadata_log import encode_batches

    d = tmp_path / "__cluster_metadata-0"
    plog = PartitionLog.open(d, RAFT_LOG_CONFIG)
    plog.append(encode_batches(0, [Entry(1, b"a"), Entry(1, b"b")]), assign_offsets=False)
    plog.append(encode_batches(5, [Entry(1, b"c")]), assign_offsets=False)  # a follower may skip ahead
    plog.flush()
    plog.close()
    with pytest.raises(MetadataLogError, match="offset 5 follows 1"):
        MetadataLog(d)


def test_the_metadata_log_is_opened_as_kafkas(tmp_path):
    """As Kafka 4.4's KafkaRaftLog opens __cluster_metadata-0 (MetadataLogConfig's defaults): 1 GiB
    segments rolled after 7 days, no retention (snapshots move its start), no flush by count or
    time (the Raft layer flushes). The single-node controller's logs open with the same."""
    log = MetadataLog(tmp_path / "__cluster_metadata-0")
    config = log.partition_log.config
    log.close()
    assert config is METADATA_LOG_CONFIG
    assert (config.segment_bytes, config.segment_ms) == (1024 * 1024 * 1024, 7 * 24 * 3600 * 1000)
    assert (config.retention_ms, config.retention_bytes) == (-1, -1)
    assert config.flush_messages == config.flush_ms == 2**63 - 1
