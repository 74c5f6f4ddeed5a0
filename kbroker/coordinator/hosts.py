"""What the coordinators use of their broker: one ``Protocol`` per consumer, named structurally.

The broker (``kbroker.broker.Broker``, the composition root) provides every one of them; a test
gives a coordinator a fake with just these members. They live here, in the coordinator layer,
because the coordinators are their lowest users: nothing here imports a coordinator module (the
coordinators import this one), so the import graph stays acyclic.

- :class:`BrokerView` — config and metadata image (share group configs), :class:`GroupsView`
  with the authorizer (the group kinds);
- :class:`WriteHost` — waiting for a coordinator write's replication (``coordinator_writes``);
- :class:`CoordinatorHost` — a coordinator of an internal topic (creating it, its local
  partitions, appending to them): the share state store and dead letters; :class:`GroupsHost`
  adds what the group coordinator's kinds see (:class:`GroupsView`);
- :class:`TxnHost` — the transaction coordinator (adds producer ids, every local partition and
  the group coordinator's transactional offsets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Protocol

from kbroker.replication.topics import InternalTopicOwner, TopicHost

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.coordinator.group_regex import Authorizer as RegexAuthorizer
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.deadline import WaitClock
    from kbroker.replication.partition import Partition
    from kbroker.replication.producer_ids import ProducerIdManager
    from kbroker.replication.replica_fetcher import InternodeSecurity
    from kbroker.replication.replica_manager import ReplicaManager
    from kbroker_protocol.errors import ErrorCode


class BrokerView(Protocol):
    """What the group kinds and the share group configs read of the broker."""

    config: BrokerConfig
    image: MetadataImage


class GroupsView(BrokerView, Protocol):
    """What the group kinds read of the broker: a :class:`BrokerView` and the authorizer (the
    consumer groups' regular expressions match only topics the member may describe)."""

    @property
    def authorizer(self) -> RegexAuthorizer | None: ...  # None: none (every topic described)


class WriteHost(Protocol):
    """What waiting for a coordinator write's replication uses: ``offsets.commit.timeout.ms``,
    the replica manager's high-watermark wait, and the manual clock (None: real time)."""

    config: BrokerConfig

    @property
    def replica_manager(self) -> ReplicaManager: ...

    @property
    def clock(self) -> WaitClock | None: ...


class CoordinatorHost(TopicHost, WriteHost, Protocol):
    """A coordinator of an internal topic: creates it on first use (:class:`TopicHost`), appends
    to the partitions of it this broker leads and waits for their replication (:class:`WriteHost`)."""

    @property
    def stopping(self) -> bool: ...  # shutting down: NOT_COORDINATOR, held requests answer now

    def partition(self, topic: str, index: int) -> Partition | None: ...

    def run_in_background(self, work: Coroutine[object, None, object], name: str) -> asyncio.Task[object]:
        ...  # (the creation of its topic: cancelled when the broker stops)


class GroupsHost(CoordinatorHost, GroupsView, Protocol):
    """The group coordinator's broker: a :class:`CoordinatorHost` its group kinds see as a
    :class:`GroupsView`."""


class TxnGroups(InternalTopicOwner, Protocol):
    """What the transaction coordinator uses of the group coordinator: where a group's offsets
    live and a transaction's marker for an offsets partition (one for the partition, completing the
    producer's offsets of all its groups); its internal topic (:class:`InternalTopicOwner`)."""

    def partition_for(self, group_id: str) -> int: ...

    async def write_txn_marker(self, producer_id: int, index: int, commit: bool, producer_epoch: int,
                               coordinator_epoch: int) -> ErrorCode: ...


class TxnHost(CoordinatorHost, Protocol):
    """The transaction coordinator's broker: a :class:`CoordinatorHost` with producer ids, every
    local partition (producer-state snapshots, expiration) and the group coordinator, and the
    inter-broker listener's security (the marker channel's connections)."""

    @property
    def partitions(self) -> Mapping[tuple[str, int], Partition]: ...

    @property
    def producer_ids(self) -> ProducerIdManager: ...

    @property
    def group_coordinator(self) -> TxnGroups | None: ...

    @property
    def internode_security(self) -> InternodeSecurity: ...
