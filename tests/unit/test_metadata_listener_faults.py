"""A broker-side metadata listener that fails (e.g. LocalPartitions' log deletion raising OSError
on a failed log dir) is a fault logged as Kafka's MetadataLoader logs a failing publisher: the
other listeners still get the record, and the controller's image gets every committed record
whatever happened on the broker's side (a standby's controller image must not diverge)."""
from __future__ import annotations

import logging
import uuid

import pytest

from kbroker.metadata import metadata_records as mr
from kbroker.raft.log import Entry
from tests.unit.metadata_image_helpers import node

TID = uuid.UUID(int=7)


def _commit(raft, record) -> None:  # type: ignore[no-untyped-def]
    raft.log.append([Entry(2, mr.encode_frame(record), batch_end=True)])
    raft.commit_through(raft.log.end_offset)


def test_a_failing_listener_is_logged_and_the_others_and_the_controller_still_get_the_record(
        caplog: pytest.LogCaptureFixture) -> None:
    controller, loader, raft = node()
    raft.is_leader = False  # a standby: its controller image follows the committed log
    _commit(raft, mr.TopicRecord(name="t", topic_id=TID))
    assert controller.image.topic("t") is not None

    def failing(record: object) -> None:
        if isinstance(record, mr.RemoveTopicRecord):
            raise OSError("rename failed")
    seen: list[object] = []
    loader.image.listeners.append(failing)
    loader.image.listeners.append(seen.append)
    with caplog.at_level(logging.ERROR, logger="kbroker.metadata.image"):
        _commit(raft, mr.RemoveTopicRecord(topic_id=TID))
    assert loader.image.topic("t") is None
    assert [type(r) for r in seen] == [mr.RemoveTopicRecord]
    assert controller.image.topic("t") is None
    assert controller.image.offset == loader.image.offset == 1
    assert any("RemoveTopicRecord" in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_controller_gets_the_record_when_the_loader_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, loader, raft = node()
    raft.is_leader = False

    def broken(offset: int, item: object) -> None:
        raise RuntimeError("loader broke")
    monkeypatch.setattr(loader, "on_commit", broken)
    with pytest.raises(RuntimeError):
        _commit(raft, mr.TopicRecord(name="t", topic_id=TID))
    assert controller.image.topic("t") is not None
