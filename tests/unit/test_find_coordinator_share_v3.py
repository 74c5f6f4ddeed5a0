"""FindCoordinator v1-3 with the share key type is INVALID_REQUEST, answered before any lookup (as
Kafka's KafkaApis): no creation of __share_group_state is asked, nothing waited for."""
from __future__ import annotations

import base64
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.api import find_coordinator as fc
from kbroker.metadata.image import MetadataImage
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest

SHARE_KEY = "g:" + base64.urlsafe_b64encode(uuid.UUID(int=5).bytes).decode().rstrip("=") + ":0"


class _ShareTopic:
    topic_name = "__share_group_state"

    def __init__(self) -> None:
        self.ensured = 0

    def ensure_topic(self) -> bool:
        self.ensured += 1
        return False

    def partition_for(self, key: str, /) -> int:
        return 0


@pytest.mark.parametrize("version", [1, 2, 3])
def test_share_key_type_before_v6_is_refused_without_a_lookup(version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    share = _ShareTopic()
    asked: list[int] = []

    def coordinator(broker: Any, key_type: int) -> _ShareTopic:
        asked.append(key_type)
        return share
    monkeypatch.setattr(fc, "_coordinator", coordinator)
    ctx: Any = SimpleNamespace(api_version=version, broker=SimpleNamespace(stopping=False, image=MetadataImage()))
    creating: list[Any] = []
    response = fc._find_coordinator(ctx, FindCoordinatorRequest(key=SHARE_KEY, key_type=fc.SHARE), creating)
    assert response.error_code == ErrorCode.INVALID_REQUEST
    assert response.error_message == "Share coordinator keys need FindCoordinator v6"
    assert (response.node_id, response.host, response.port) == (-1, "", -1)
    assert creating == [] and asked == []
