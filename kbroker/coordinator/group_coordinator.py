"""The group coordinator: consumer groups and their committed offsets over ``__consumer_offsets``.

One node leads every partition of ``__consumer_offsets``, so this broker coordinates every group.
A group lives in partition ``abs(javaHashCode(group_id)) % partitions`` of that topic (Kafka's
rule, so tools that read the topic find it where Kafka would). As in Kafka the topic is created
lazily (``offsets.topic.num.partitions`` partitions, compacted): by the first FindCoordinator for a
group, which answers COORDINATOR_NOT_AVAILABLE meanwhile, or by the first group write that comes
without one; a broker restarting with the topic loads it at start-up.

The group APIs first ask :func:`coordinator_error` whether the group can be served, as Kafka's
``CoordinatorRuntime`` checks the partition's context: NOT_COORDINATOR when the broker stops, the
topic is missing (except for group writes, which create it) or the partition is led elsewhere,
COORDINATOR_LOAD_IN_PROGRESS while it loads (``loaded`` false, or in ``loading_partitions``).

Durability: every change is appended to the group's partition as a record in Kafka's format (see
``group_records``) before the request is answered. Offsets change state only by applying those
records — the same ``OffsetStore.apply`` serves a live commit and the replay at start-up. Classic
groups keep their state machine in memory (``group_classic``) and write a GroupMetadata snapshot
(members, generation, assignment) whenever a generation is settled (SyncGroup of the leader, the
group becoming empty, a static member replaced); replay rebuilds the group from its latest snapshot
(Stable with members, or Empty) and gives each member a session timeout to come back. KIP-848
groups (``group_consumer``) write Kafka's per-member deltas (member metadata, target and current
assignment, epochs) and replay them the same way. The group types share ``self.groups``; a group
id is either classic or consumer, and classic consumers may be hosted by a consumer group.

Transactions hook (called by the transaction coordinator)::

    prepare_txn_offsets(group_id, producer_id, producer_epoch, offsets) -> ErrorCode
        offsets: {(topic, partition): (offset, leader_epoch, metadata)}. Appends the offsets to the
        group's partition as a *transactional* batch of that producer (so they are durable and
        replayed as pending) and keeps them pending: OffsetFetch does not return them, and
        RequireStable fetches of those partitions get UNSTABLE_OFFSET_COMMIT. Group membership is
        not checked here: call ``validate_txn_offset_commit`` first (TxnOffsetCommit v3+).
    write_txn_marker(producer_id, index, commit, producer_epoch, coordinator_epoch) -> ErrorCode
        The transaction's marker for __consumer_offsets-``index`` (the transaction coordinator's
        own, or a WriteTxnMarkers): one COMMIT/ABORT control batch for the partition, however many
        of its groups the transaction committed offsets for (Kafka's CoordinatorRuntime
        .completeTransaction), and the producer's pending offsets of every group of the partition
        materialized (commit) or dropped (abort); answered once the marker is replicated
        (``complete_txn_partition`` is the synchronous part; ``complete_txn_offsets`` the same for
        a group's partition). A restart replays the same outcome from the marker; a transaction
        left open by a crash stays pending until the transaction coordinator completes it after
        its own recovery.
    has_pending_txn_offsets(group_id, topic, partition) -> bool
    validate_txn_offset_commit(group_id, generation, member_id, group_instance_id) -> ErrorCode
"""

from __future__ import annotations

from kbroker.coordinator.group_classic_model import ClassicGroup
from kbroker.coordinator.group_coordinator_core import OFFSETS_TOPIC
from kbroker.coordinator.group_offset_ops import GroupOffsetOps
from kbroker.coordinator.loop_timer import LoopTimer
from kbroker.coordinator.share_group import PROTOCOL_TYPE as SHARE_PROTOCOL_TYPE
from kbroker.coordinator.share_group import ShareGroup
from kbroker.coordinator.streams_group import StreamsGroup
from kbroker_protocol.errors import ErrorCode

__all__ = ["OFFSETS_TOPIC", "GroupCoordinator", "LoopTimer", "await_offsets_topic", "coordinator_error",
           "group_write_error", "offsets_topic_created"]


def coordinator_error(coordinator: GroupCoordinator | None, group_id: str, *, create_topic: bool = False
                      ) -> ErrorCode:
    """What the group APIs answer for ``group_id`` before the coordinator looks at the group:
    COORDINATOR_NOT_AVAILABLE without a group coordinator (Kafka's inactive service), else
    :meth:`GroupCoordinator.group_error` (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or NONE)."""
    if coordinator is None:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    return coordinator.group_error(group_id, create_topic=create_topic)


async def await_offsets_topic(coordinator: GroupCoordinator | None) -> None:
    """Before a group API that creates a missing ``__consumer_offsets`` (``create_topic``): ask
    the controller for it and wait a bounded time for its answer, so that on the active
    controller's node the request finds the topic (elsewhere it answers COORDINATOR_NOT_AVAILABLE
    until this node's image has it)."""
    if coordinator is not None and coordinator.loaded:
        await coordinator.await_topic()


async def offsets_topic_created(coordinator: GroupCoordinator | None) -> bool:
    """For a group API answered COORDINATOR_NOT_AVAILABLE by its checks: whether
    ``__consumer_offsets`` was missing and is there after a bounded wait for the controller (then
    the request is handled again, as :func:`await_offsets_topic` would have had it)."""
    if coordinator is None or not coordinator.loaded or coordinator.ensure_topic():
        return False
    return await coordinator.await_topic()


async def group_write_error(coordinator: GroupCoordinator | None, group_id: str) -> ErrorCode:
    """Wait for what the group's partition has pending to be replicated (Kafka's coordinator
    runtime completes a write, with or without records, when the high watermark passes its last
    written offset): NONE once it is, or the error of a failed wait (NOT_COORDINATOR,
    COORDINATOR_NOT_AVAILABLE). NONE at once where this broker does not coordinate the group (the
    handler's answer says so already)."""
    if not group_id or coordinator_error(coordinator, group_id) != ErrorCode.NONE:
        return ErrorCode.NONE
    assert coordinator is not None
    return await coordinator.wait_for_replication(group_id)


class GroupCoordinator(GroupOffsetOps):
    """The group coordinator (see the module's docstring): its core and partitions are in
    ``group_coordinator_core``, its offsets in ``group_offset_ops``; the groups' listing and
    deletion here."""

    # -- groups: describe, list, delete ---------------------------------------------------------------------

    def list_groups(self, states: list[str], types: list[str]) -> list[tuple[str, str, str, str]]:
        """(group id, protocol type, state, type) of every live group matching the filters."""
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        out = []
        for group_id, group in self.groups.items():
            if isinstance(group, ClassicGroup):
                state, gtype, ptype = group.state.value, "classic", group.protocol_type or ""
            elif isinstance(group, StreamsGroup):
                state, gtype, ptype = group.state_name(), "streams", "streams"
            elif isinstance(group, ShareGroup):
                state, gtype, ptype = group.state_name(), "share", SHARE_PROTOCOL_TYPE
            else:
                state, gtype, ptype = group.state_name(), "consumer", "consumer"
            if state == "Dead":
                continue
            if wanted_states and state.lower() not in wanted_states:
                continue
            if wanted_types and gtype not in wanted_types:
                continue
            out.append((group_id, ptype, state, gtype))
        return out

    def delete_groups(self, group_ids: list[str]) -> list[tuple[str, ErrorCode]]:
        out = []
        for group_id in group_ids:
            out.append((group_id, self._delete_group(group_id)))
        return out
