"""The current leader of a partition for KIP-951 answers (Fetch's and Produce's
``current_leader`` and ``node_endpoints``): from the local replica or the metadata image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.partition import Partition


class LeaderLookup(Protocol):
    """What :func:`current_leader` reads of the broker (Fetch's and Produce's KIP-951 answers)."""

    node_id: int
    image: MetadataImage

    def partition(self, topic: str, index: int) -> Partition | None: ...

    def listener_endpoint(self, listener: str) -> tuple[str, int]: ...


def current_leader(broker: LeaderLookup, topic: str | None, index: int, listener: str,
                   endpoints: dict[int, tuple[str, int, str | None]]) -> tuple[int, int]:
    """(leader id, leader epoch) of a partition for KIP-951 answers, from the local replica or
    the image; the leader's endpoint on ``listener`` is added to ``endpoints`` when it is live."""
    state = broker.image.partition(topic, index) if topic is not None else None
    partition = broker.partition(topic, index) if topic is not None else None
    if partition is not None:
        leader, epoch = partition.leader_id, partition.leader_epoch
    elif state is not None:
        leader, epoch = state.leader, state.leader_epoch
    else:
        return -1, -1
    reg = broker.image.brokers.get(leader)
    if reg is not None and not reg.fenced:
        if leader == broker.node_id:
            host, port = broker.listener_endpoint(listener)
            endpoints[leader] = (host, port, reg.rack)
        else:
            ep = reg.endpoints.get(listener)
            if ep is not None:
                endpoints[leader] = (ep[0], ep[1], reg.rack)
    return leader, epoch
