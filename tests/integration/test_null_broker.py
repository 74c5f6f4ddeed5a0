"""scripts/null_broker.c, the benchmark ceiling of issue 23 (bench_scale.py ceiling), answers in a
form our codec decodes: ApiVersions lists what it serves, Fetch returns valid record batches (CRC-32C
checked) at consecutive offsets from the one asked for, within the byte limits, and ListOffsets and
Produce answers parse. Behaviour only: no timing here (the figures are the benchmark's)."""

from __future__ import annotations

import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from wire import Wire

from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.record_batch import LOG_OVERHEAD, validate_batch
from kbroker_protocol.records import Record, build_batch, decode_batch

SOURCE = Path(__file__).resolve().parents[2] / "scripts" / "null_broker.c"
BATCH_RECORDS = 64  # null_broker.c's BATCH_RECORDS and RECORD_VALUE
VALUE = b"v" * 1024


def gcc_path() -> str:
    """gcc, which scripts/install-test-tools installs (scripts/test runs it): its absence fails the
    tests with that instruction rather than skipping them."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise AssertionError("gcc is not installed, so scripts/null_broker.c cannot be built: "
                             "run scripts/install-test-tools (apt-get install gcc)")
    return gcc


@pytest.fixture(scope="module")
def null_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gcc = gcc_path()
    binary = tmp_path_factory.mktemp("null-broker") / "null_broker"
    subprocess.run([gcc, "-O2", "-Wall", "-pthread", "-o", str(binary), str(SOURCE)], check=True)
    proc = subprocess.Popen([str(binary), "0", "8"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the null broker printed no listening line within 30 s"
        line = proc.stdout.readline()
        assert line.startswith("null broker listening on 127.0.0.1:"), line
        yield line.split()[-1]
    finally:
        proc.kill()
        proc.wait()


def fetch_partition(**fields: object) -> object:
    return REQUESTS[1].FetchTopic.FetchPartition(current_leader_epoch=-1, log_start_offset=-1, **fields)


def fetch(wire: Wire, version: int, parts: list[tuple[int, int, int]], max_bytes: int = 50 << 20):
    """Fetch (partition, offset, partition max bytes) of topic `t`."""
    req = REQUESTS[1]
    topic = req.FetchTopic(topic="t", partitions=[
        fetch_partition(partition=p, fetch_offset=o, partition_max_bytes=m) for p, o, m in parts])
    return wire.call(1, version, replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=max_bytes,
                     isolation_level=0, session_id=0, session_epoch=-1, topics=[topic],
                     forgotten_topics_data=[], rack_id="")


def batches(records: bytes) -> list:
    """Every batch of a partition's records, CRC and layout checked, decoded."""
    out, pos = [], 0
    while pos < len(records):
        header = validate_batch(records, pos)
        out.append(decode_batch(records, pos))
        pos += LOG_OVERHEAD + header.batch_length
    return out


def test_api_versions_lists_fetch_and_list_offsets(null_broker: str) -> None:
    wire = Wire(null_broker, timeout=30)
    try:
        resp = wire.call(18, 3, client_software_name="t", client_software_version="1")
    finally:
        wire.close()
    assert resp.error_code == 0
    ranges = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert ranges == {0: (3, 8), 1: (4, 11), 2: (1, 5), 3: (1, 8), 18: (0, 3)}


@pytest.mark.parametrize("version", [4, 7, 11])
def test_fetch_serves_valid_batches_from_the_offset_asked_for(null_broker: str, version: int) -> None:
    wire = Wire(null_broker, timeout=30)
    try:
        resp = fetch(wire, version, [(0, 0, 200_000), (3, 1000, 200_000)])
    finally:
        wire.close()
    assert resp.throttle_time_ms == 0
    [topic] = resp.responses
    assert topic.topic == "t"
    for part, (index, offset) in zip(topic.partitions, [(0, 0), (3, 1000)], strict=True):
        assert (part.partition_index, part.error_code) == (index, 0)
        decoded = batches(bytes(part.records))
        # as many copies of the ~66 KB batch as fit in 200,000 bytes: three
        assert len(decoded) == 3
        assert len(part.records) <= 200_000
        records = [r for b in decoded for r in b.records]
        assert [r.offset for r in records] == list(range(offset, offset + 3 * BATCH_RECORDS))
        assert all(r.key is None and r.value == VALUE for r in records)
        assert part.high_watermark == offset + 3 * BATCH_RECORDS
        assert part.aborted_transactions is None


def test_fetch_keeps_to_max_bytes_but_serves_one_batch_at_least(null_broker: str) -> None:
    wire = Wire(null_broker, timeout=30)
    try:
        # max_bytes below one batch: the first partition still gets one, the second none
        resp = fetch(wire, 11, [(1, 5, 1 << 20), (2, 0, 1 << 20)], max_bytes=1000)
        # a partition limit below one batch on a later partition: empty records, not an error
        resp2 = fetch(wire, 11, [(1, 5, 1 << 20), (2, 0, 100)])
    finally:
        wire.close()
    first, second = resp.responses[0].partitions
    assert [len(b.records) for b in batches(bytes(first.records))] == [BATCH_RECORDS]
    assert batches(bytes(first.records))[0].header.base_offset == 5
    assert (second.error_code, bytes(second.records)) == (0, b"")
    first2, second2 = resp2.responses[0].partitions
    one = LOG_OVERHEAD + validate_batch(bytes(first2.records), 0).batch_length
    assert len(batches(bytes(first2.records))) == (1 << 20) // one
    assert (second2.error_code, bytes(second2.records)) == (0, b"")


def test_a_consumer_keeps_reading_at_the_offsets_it_was_given(null_broker: str) -> None:
    """Fetch, then fetch again from the next offset, as a consumer does: offsets keep advancing."""
    wire = Wire(null_broker, timeout=30)
    try:
        offset, seen = 0, []
        for _ in range(3):
            part = fetch(wire, 11, [(0, offset, 150_000)]).responses[0].partitions[0]
            records = [r for b in batches(bytes(part.records)) for r in b.records]
            seen += [r.offset for r in records]
            offset = records[-1].offset + 1
    finally:
        wire.close()
    assert seen == list(range(len(seen))) and len(seen) == 3 * 2 * BATCH_RECORDS


def test_list_offsets_and_produce_answers_parse(null_broker: str) -> None:
    lo, pr = REQUESTS[2], REQUESTS[0]
    wire = Wire(null_broker, timeout=30)
    try:
        offsets = wire.call(2, 5, replica_id=-1, isolation_level=0, topics=[lo.ListOffsetsTopic(
            name="t", partitions=[lo.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=p, current_leader_epoch=-1, timestamp=ts) for p, ts in ((0, -2), (7, -1))])])
        batch = build_batch([Record(key=b"k", value=b"x", timestamp=1_700_000_000_000)])
        produced = wire.call(0, 8, transactional_id=None, acks=1, timeout_ms=1000, topic_data=[
            pr.TopicProduceData(name="t", partition_data=[
                pr.TopicProduceData.PartitionProduceData(index=2, records=batch)])])
    finally:
        wire.close()
    [topic] = offsets.topics
    assert [(p.partition_index, p.error_code, p.offset) for p in topic.partitions] == [(0, 0, 0), (7, 0, 0)]
    [ptopic] = produced.responses
    assert [(p.index, p.error_code) for p in ptopic.partition_responses] == [(2, 0)]


def test_malformed_input_closes_the_connection(null_broker: str) -> None:
    wire = Wire(null_broker, timeout=30)
    try:
        # a Fetch v11 frame cut after its header: the broker closes rather than answer garbage
        wire.sock.sendall(b"\x00\x00\x00\x0c" + b"\x00\x01\x00\x0b\x00\x00\x00\x07\x00\x02ab")
        assert wire.sock.recv(1) == b""  # (the socket's 30 s timeout bounds the wait)
    finally:
        wire.close()


def test_a_missing_gcc_fails_with_the_install_instruction(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssertionError, match="run scripts/install-test-tools"):
        gcc_path()
