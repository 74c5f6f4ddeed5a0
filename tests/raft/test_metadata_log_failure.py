"""A storage error in the KRaft metadata log halts the node, as Kafka 4.4 (KafkaRaftClientDriver's
fatal fault handler; ReplicaManager's "Shutdown broker because the metadata log dir ... has
failed"): appending/flushing, truncating, writing or installing a snapshot, and writing the
quorum state. The halt (``dir_failure.halt``, ``os._exit(1)``) is replaced here by one that
raises; tests/faults/test_metadata_log_full.py fills a real disk under a kbroker process."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from kbroker.log import dir_failure
from kbroker.log.append import LogAppend
from kbroker.log.segment import LogSegment
from kbroker.metadata import metadata_log as metadata_log_module
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.metadata_log import MetadataLog
from kbroker.raft import state_store
from kbroker.raft.log import Entry
from kbroker.raft.state_store import ElectionState, FileQuorumStateStore


class Halted(Exception):
    pass


@pytest.fixture
def halts(monkeypatch) -> list[int]:
    statuses: list[int] = []

    def halt(status: int = 1) -> None:
        statuses.append(status)
        raise Halted(status)

    monkeypatch.setattr(dir_failure, "halt", halt)
    return statuses


def _no_space(*args: object, **kw: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _log(tmp_path: Path, entries: int = 5) -> MetadataLog:
    log = MetadataLog(tmp_path / "__cluster_metadata-0")
    log.append([Entry(1, bytes([i])) for i in range(entries)])
    log.flush()
    return log


def _fatal_lines(caplog: pytest.LogCaptureFixture, tmp_path: Path, what: str) -> None:
    fatal = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any(m.startswith(f"Error while {what} in the metadata log dir {tmp_path}: ") and "No space" in m
               for m in fatal), fatal
    assert f"Shutdown broker because the metadata log dir {tmp_path} has failed" in fatal


def test_a_write_error_appending_to_the_metadata_log_halts(tmp_path, halts, monkeypatch, caplog):
    log = _log(tmp_path)
    log.append([Entry(1, b"more")])
    monkeypatch.setattr(LogSegment, "write", _no_space)
    with pytest.raises(Halted):
        log.flush()
    assert halts == [1]
    _fatal_lines(caplog, tmp_path, "appending to the metadata log")
    log.close()


def test_a_flush_error_halts(tmp_path, halts, monkeypatch, caplog):
    log = _log(tmp_path)
    log.append([Entry(1, b"more")])
    monkeypatch.setattr(LogAppend, "flush", lambda self: _no_space())  # the fsync
    with pytest.raises(Halted):
        log.flush()
    assert halts == [1]
    _fatal_lines(caplog, tmp_path, "appending to the metadata log")
    log.close()


def test_a_truncation_error_halts(tmp_path, halts, monkeypatch, caplog):
    log = _log(tmp_path)
    monkeypatch.setattr(type(log.partition_log), "truncate_to", lambda self, offset: _no_space())
    with pytest.raises(Halted):
        log.truncate_to(2)
    assert halts == [1]
    _fatal_lines(caplog, tmp_path, "truncating the metadata log to 2")
    log.close()


def test_a_snapshot_write_error_halts(tmp_path, halts, monkeypatch, caplog):
    log = _log(tmp_path)
    monkeypatch.setattr(metadata_log_module, "write_atomically", _no_space)
    frames = [mr.encode_frame(mr.ProducerIdsRecord(broker_id=1, broker_epoch=5, next_producer_id=1))]
    with pytest.raises(Halted):
        log.take_snapshot(3, frames)
    assert halts == [1]
    _fatal_lines(caplog, tmp_path, "writing the metadata snapshot at 3")
    log.close()


def test_a_quorum_state_write_error_halts(tmp_path, halts, monkeypatch, caplog):
    d = tmp_path / "__cluster_metadata-0"
    d.mkdir()
    store = FileQuorumStateStore(d)
    store.write(ElectionState(epoch=1, leader_id=1))
    monkeypatch.setattr(state_store, "write_atomically", _no_space)
    with pytest.raises(Halted):
        store.write(ElectionState(epoch=2, voted_id=1))
    assert halts == [1]
    _fatal_lines(caplog, tmp_path, "writing the quorum state")
    assert store.read() == ElectionState(epoch=1, leader_id=1)


def test_the_halt_ends_the_process_with_status_1(tmp_path):
    """No stand-in: the real halt, in a child process whose metadata log cannot be written."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import errno, logging
        from kbroker.metadata.metadata_log import MetadataLog
        from kbroker.log.segment import LogSegment
        from kbroker.raft.log import Entry
        logging.basicConfig(level=logging.INFO)
        log = MetadataLog({str(tmp_path / "__cluster_metadata-0")!r})
        log.append([Entry(1, b"a")])
        log.flush()
        def write(*a, **k):
            raise OSError(errno.EIO, "Input/output error")
        LogSegment.write = write
        log.append([Entry(1, b"b")])
        try:
            log.flush()
        except OSError:
            print("went on")
        print("not halted")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "not halted" not in done.stdout and "went on" not in done.stdout
    assert f"Shutdown broker because the metadata log dir {tmp_path} has failed" in done.stderr


def test_a_failed_log_dir_holding_the_metadata_log_halts_even_with_others_left(tmp_path, halts, caplog):
    """Several log dirs, the first also the metadata log dir: its failure halts the node (Kafka's
    ReplicaManager.handleLogDirFailure); another dir's failure is reported to the controller."""
    import asyncio
    import uuid
    from types import SimpleNamespace

    from kbroker.wiring.jbod import JbodAgent

    first, second = tmp_path / "a", tmp_path / "b"
    reported: list[Path] = []
    broker = SimpleNamespace(config=SimpleNamespace(metadata_log_dir=first))

    async def run() -> None:
        agent = JbodAgent(broker, {first: uuid.uuid4(), second: uuid.uuid4()}, 1000)
        agent._propagate = lambda log_dir, d: reported.append(log_dir)  # type: ignore[method-assign]
        agent.on_dir_failed(second)
        await asyncio.sleep(0)  # the report is scheduled on the loop
        assert halts == [] and reported == [second]
        with pytest.raises(Halted):
            agent.on_dir_failed(first)

    asyncio.run(run())
    assert halts == [1] and reported == [second]
    assert f"Shutdown broker because the metadata log dir {first} has failed" in caplog.text
