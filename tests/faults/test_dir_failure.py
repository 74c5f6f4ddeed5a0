"""A storage error at run time fails the log dir, as Kafka's LogDirFailureChannel (no root needed:
the error is raised by the segment write; tests/faults/test_disk_full.py fills a real disk)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kbroker.log import LogConfig, LogManager
from kbroker.log.log_manager import LogDirOfflineError
from kbroker.log.segment import LogSegment
from kbroker_protocol.records import Record, build_batch

BATCH = build_batch([Record(key=b"k", value=b"v", timestamp=1)])


@pytest.fixture
def manager(tmp_path):
    m = LogManager([tmp_path / "a", tmp_path / "b"], LogConfig())
    failures: list[int] = []
    m.on_all_dirs_failed = lambda: failures.append(1)
    yield m, failures
    m.close()


def _logs_in(m: LogManager, d: Path) -> list[str]:
    return [log.directory.name for log in m.partitions().values() if log.directory.parent == d]


def _fail_writes(monkeypatch, directory: Path, err: int = errno.ENOSPC) -> None:
    real = LogSegment.write

    def write(self, buffers, nbytes):  # type: ignore[no-untyped-def]
        if Path(self.log_path).parent.parent == directory:
            raise OSError(err, "No space left on device" if err == errno.ENOSPC else "simulated")
        return real(self, buffers, nbytes)

    monkeypatch.setattr(LogSegment, "write", write)


def test_no_space_fails_the_dir_and_every_log_in_it(manager, tmp_path, monkeypatch, caplog):
    m, failures = manager
    logs = {p: m.get_or_create("t", p) for p in range(4)}
    for log in logs.values():
        log.append(BATCH)
    a = tmp_path / "a"
    in_a = [p for p, log in logs.items() if log.directory.parent == a]
    in_b = [p for p, log in logs.items() if log.directory.parent != a]
    assert in_a and in_b
    _fail_writes(monkeypatch, a)
    with pytest.raises(OSError) as raised:
        logs[in_a[0]].append(BATCH)
    assert raised.value.errno == errno.ENOSPC
    assert m.offline_dirs == [a] and m.online_dirs == [tmp_path / "b"]
    # every log of the failed dir is offline (KAFKA_STORAGE_ERROR), nothing more is written there
    for p in in_a:
        assert isinstance(logs[p].offline, LogDirOfflineError)
        with pytest.raises(LogDirOfflineError):
            logs[p].append(BATCH)
        assert logs[p].log_end_offset == 1  # the failed append left nothing behind
    # the other dir serves on; the broker is not halted while a dir is left
    for p in in_b:
        assert logs[p].append(BATCH).first_offset == 1
    assert failures == []
    text = caplog.text
    assert f"Error while appending to t-{in_a[0]} in dir {a}" in text
    assert f"Stopping serving logs in dir {a}" in text


def test_every_dir_failed_calls_the_halt_once(manager, tmp_path, monkeypatch, caplog):
    m, failures = manager
    logs = [m.get_or_create("t", p) for p in range(2)]
    assert {log.directory.parent for log in logs} == {tmp_path / "a", tmp_path / "b"}
    _fail_writes(monkeypatch, tmp_path / "a", errno.EIO)
    with pytest.raises(OSError):
        next(log for log in logs if log.directory.parent == tmp_path / "a").append(BATCH)
    assert failures == []
    _fail_writes(monkeypatch, tmp_path / "b")
    with pytest.raises(OSError):
        next(log for log in logs if log.directory.parent == tmp_path / "b").append(BATCH)
    assert failures == [1]
    assert (f"Shutdown broker because all log dirs in {tmp_path / 'a'}, {tmp_path / 'b'} have failed"
            in caplog.text)


def test_a_descriptor_shortage_is_no_dir_failure(manager, tmp_path, monkeypatch):
    m, _ = manager
    log = m.get_or_create("t", 0)
    _fail_writes(monkeypatch, log.directory.parent, errno.EMFILE)
    with pytest.raises(OSError):
        log.append(BATCH)
    assert m.offline_dirs == [] and log.offline is None


def test_a_flush_error_fails_the_dir(manager, tmp_path, monkeypatch):
    m, _ = manager
    log = m.get_or_create("t", 0)
    log.append(BATCH)

    def fdatasync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("kbroker.log.append.os.fdatasync", fdatasync)
    with pytest.raises(OSError):
        log.flush()
    assert m.offline_dirs == [log.directory.parent] and log.offline is not None


def test_a_closed_manager_no_longer_handles_its_dirs(tmp_path, monkeypatch):
    m = LogManager([tmp_path / "a"], LogConfig())
    failures: list[int] = []
    m.on_all_dirs_failed = lambda: failures.append(1)
    log = m.get_or_create("t", 0)
    m.close()
    m2 = LogManager([tmp_path / "a"], LogConfig())
    try:
        log2 = m2.get_or_create("t", 0)
        _fail_writes(monkeypatch, tmp_path / "a")
        with pytest.raises(OSError):
            log2.append(BATCH)
        assert failures == [] and m.offline_dirs == [] and m2.offline_dirs == [tmp_path / "a"]
        assert log.offline is None
    finally:
        m2.close()


def test_a_transaction_index_write_error_fails_the_dir(manager, tmp_path, monkeypatch):
    """The ABORT marker is appended, its .txnindex entry cannot be written (a full disk): the dir
    fails and the log goes offline, as Kafka's updateTransactionIndex does, rather than serving
    the aborted records to read_committed fetches as committed (a transactional fault run)."""
    from kbroker.log.txn_index import TransactionIndex

    m, _failures = manager
    log = next(log for log in (m.get_or_create("t", p) for p in range(4)) if log.directory.parent == tmp_path / "a")
    log.append(BATCH)
    real = TransactionIndex.append

    def append(self, txn):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TransactionIndex, "append", append)
    with pytest.raises(OSError):
        log.record_aborted_txn(1000, 0, 0, 1)
    monkeypatch.setattr(TransactionIndex, "append", real)
    assert m.offline_dirs == [tmp_path / "a"]
    assert isinstance(log.offline, LogDirOfflineError)
