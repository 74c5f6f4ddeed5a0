"""A real full disk (a small tmpfs, as root): a kbroker process whose only log dir fills up stops as
Kafka 4.4 does (the dir fails, ``Shutdown broker because all log dirs in <dir> have failed``, exit
status 1) and every record it acknowledged is there after a restart with space again."""

from __future__ import annotations

import subprocess
import time

import confluent_kafka
import pytest
from faults import disk
from faults.broker import BrokerProcess, free_port
from rootcheck import needs_root  # noqa: F401 - autouse fixture

TOPIC = "full"


@pytest.fixture
def small_disk(tmp_path):
    with disk.small_disk(tmp_path / "disk", 6, "kbf-test-full") as path:
        yield path


def test_a_full_disk_stops_the_broker_and_keeps_what_it_acknowledged(small_disk, tmp_path):
    data = small_disk / "data"
    log_path = tmp_path / "broker.log"
    broker = BrokerProcess(data, free_port(), "default", 1, log_path)
    broker.start()
    acked: dict[int, bytes] = {}
    refused: list[str] = []

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is None:
            acked[msg.offset()] = msg.value()
        else:
            refused.append(err.name())

    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                                         "enable.idempotence": True, "linger.ms": 5,
                                         "message.timeout.ms": 20000,
                                         "reconnect.backoff.max.ms": 1000})
    try:
        i = 0
        deadline = time.monotonic() + 120
        assert broker.proc is not None
        while broker.proc.poll() is None and time.monotonic() < deadline:
            try:
                producer.produce(TOPIC, value=f"{i:08d}".encode() + b"x" * 2000, partition=0, on_delivery=on_delivery)
                i += 1
            except BufferError:
                producer.poll(0.1)
            producer.poll(0)
        assert broker.proc.poll() is not None, "the broker still runs on a full disk"
        producer.flush(30)
    finally:
        code = broker.stop()
    assert code == 1
    text = log_path.read_text(errors="replace")
    assert f"Shutdown broker because all log dirs in {data} have failed" in text
    assert f"in dir {data}: [Errno 28] No space left on device" in text
    assert acked, "nothing was acknowledged before the disk filled"

    # Space again (as an operator would make): the broker starts, and holds every acknowledged record.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    broker.start()
    consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "check",
                                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        consumer.assign([confluent_kafka.TopicPartition(TOPIC, 0, 0)])
        read: dict[int, bytes] = {}
        at_end = False
        deadline = time.monotonic() + 60
        while not at_end and time.monotonic() < deadline:
            for msg in consumer.consume(500, 1.0):
                if msg.error() is None:
                    read[msg.offset()] = msg.value()
                elif msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    at_end = True
        assert at_end, f"the restarted broker did not serve the partition to its end ({len(read)} read)"
    finally:
        consumer.close()
        assert broker.stop() == 0
    missing = [o for o, v in acked.items() if read.get(o) != v]
    assert not missing, f"{len(missing)} acknowledged records lost or changed, e.g. offset {missing[0]}"
