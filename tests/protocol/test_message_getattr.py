"""Only the message classes with lazy struct defaults have a ``__getattr__`` (kbroker_protocol.message:
a class with one loses the interpreter's fast attribute loads), and those still build a default
the input did not carry on first access."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import kbroker_protocol.messages as messages_package
from kbroker_protocol.message import Message
from kbroker_protocol.messages.fetch import FetchRequest, FetchResponse
from kbroker_protocol.messages.produce import ProduceResponse


def _message_classes() -> list[type[Message]]:
    found: list[type[Message]] = []

    def walk(cls: type[Message]) -> None:
        if cls in found:
            return
        found.append(cls)
        for value in vars(cls).values():
            if isinstance(value, type) and issubclass(value, Message):
                walk(value)

    for info in pkgutil.iter_modules(messages_package.__path__):
        module = importlib.import_module(f"{messages_package.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Message) and value.__module__ == module.__name__:
                walk(value)
    return found


def test_a_class_has_a_getattr_exactly_when_it_has_lazy_defaults():
    classes = _message_classes()
    lazy = [cls for cls in classes if cls._LAZY_DEFAULTS]
    assert len(classes) > 300 and 10 <= len(lazy) < len(classes) // 10  # (most classes have none)
    for cls in classes:
        assert hasattr(cls, "__getattr__") == bool(cls._LAZY_DEFAULTS), cls.__qualname__
    assert not hasattr(Message, "__getattr__")
    assert not hasattr(FetchResponse, "__getattr__") and not hasattr(FetchResponse.FetchableTopicResponse, "__getattr__")


def test_lazy_defaults_are_built_on_first_access_and_kept():
    # v12 has no ReplicaState (a v15 field): decoding leaves it unset
    request = FetchRequest(replica_id=-1, max_wait_ms=100, min_bytes=1, topics=[])
    decoded = FetchRequest.decode(request.encode(12), 12)
    state = decoded.replica_state
    assert (state.replica_id, state.replica_epoch) == (-1, -1)
    assert decoded.replica_state is state
    partition = FetchResponse.FetchableTopicResponse.PartitionData(partition_index=3, records=b"")
    response = FetchResponse(responses=[FetchResponse.FetchableTopicResponse(topic="t", partitions=[partition])])
    got = FetchResponse.decode(response.encode(12), 12).responses[0].partitions[0]
    assert (got.diverging_epoch.epoch, got.current_leader.leader_id, got.snapshot_id.end_offset) == (-1, -1, -1)
    answer = ProduceResponse.TopicProduceResponse.PartitionProduceResponse(index=1)
    assert ProduceResponse.TopicProduceResponse.PartitionProduceResponse.decode(answer.encode(10), 10).current_leader.leader_id == -1


def test_an_unknown_attribute_raises_attribute_error_on_either_kind_of_class():
    with pytest.raises(AttributeError, match="no_such_field"):
        _ = FetchRequest().no_such_field  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no_such_field"):
        _ = FetchResponse().no_such_field  # type: ignore[attr-defined]
