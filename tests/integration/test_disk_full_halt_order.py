"""A broker whose only log dir fills up answers the produce requests in flight with
KAFKA_STORAGE_ERROR before it halts, as Kafka 4.4: ``UnifiedLog.append`` (LocalLog.
maybeHandleIOException) fails the dir and throws KafkaStorageException, which ReplicaManager.
appendToLocalLog puts in the produce response, while the halt (LogManager.handleLogDirFailure,
"Shutdown broker because all log dirs in ... have failed", Exit.halt(1)) runs in the
LogDirFailureHandler thread. A fault run with a filling disk saw Kafka's producers get
KAFKA_STORAGE_ERROR where kbroker's saw a dropped connection (kbroker/wiring/dir_halt.py).

The disk fills in-process (an ENOSPC from the segment write) and the halt is replaced by one that
does what the process's end does to the clients: every connection is cut, whatever was not yet
written to its socket is lost."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

from kbroker.log import dir_failure
from kbroker.log.segment import LogSegment
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.produce import ProduceRequest
from tests.integration.transactions_helpers import RawClient, create_topic, data_batch, new_name, produce


def _produce_request(topic: str, partition: int, records: bytes) -> ProduceRequest:
    return ProduceRequest(transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[
        ProduceRequest.TopicProduceData(name=topic, partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=records)])])


class _Batched:
    """A socket whose ``sendall`` is held until ``flush``: pipelined requests leave in one write."""

    def __init__(self, sock) -> None:  # type: ignore[no-untyped-def]
        self.sock = sock
        self.held = b""

    def sendall(self, data: bytes) -> None:
        self.held += data

    def flush(self) -> None:
        self.sock.sendall(self.held)
        self.held = b""

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.sock, name)


def test_the_produce_requests_in_flight_are_answered_storage_error_before_the_halt(tmp_path, monkeypatch):
    data = tmp_path / "data"
    config = {"log.dirs": str(data), "metadata.log.dir": str(tmp_path / "meta")}
    with BrokerThread(config=config, data_dir=str(tmp_path / "unused")) as thread:
        broker = thread.broker
        assert broker is not None
        halted = threading.Event()
        halts: list[int] = []

        def halt(status: int = 1) -> None:  # on the broker's loop: the process ends for the clients
            halts.append(status)
            for conn in list(broker.connections):
                conn.abort()
            halted.set()

        monkeypatch.setattr(dir_failure, "halt", halt)
        topic = new_name("diskfull")
        create_topic(thread.bootstrap_servers, topic, partitions=2)
        real = LogSegment.write

        def write(self, buffers, nbytes):  # type: ignore[no-untyped-def]
            if Path(self.log_path).parent.parent == data:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, buffers, nbytes)

        raw = RawClient(thread.bootstrap_servers)
        try:
            first = produce(raw, topic, 0, data_batch(-1, -1, -1, [b"before"]))
            assert (first.error_code, first.base_offset) == (ErrorCode.NONE, 0)
            monkeypatch.setattr(LogSegment, "write", write)  # the disk is full from now on
            sock = raw.sock
            raw.sock = _Batched(sock)  # type: ignore[assignment]
            for partition in (0, 1, 0):
                raw.send(_produce_request(topic, partition, data_batch(-1, -1, -1, [b"full"])), 9)
            raw.sock.flush()  # type: ignore[attr-defined]
            raw.sock = sock
            answers = [raw.receive().responses[0].partition_responses[0] for _ in range(3)]
            # the append that hit the full disk, and those behind it on the failed dir
            assert [ErrorCode(a.error_code).name for a in answers] == ["KAFKA_STORAGE_ERROR"] * 3
            assert halted.wait(30), "the broker did not halt once every log dir had failed"
            assert halts == [1]
            try:  # and then the connection ends with the process
                assert raw.sock.recv(1) == b""
            except ConnectionResetError:
                pass
        finally:
            raw.close()
