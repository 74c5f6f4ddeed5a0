"""The record a JoinGroup writes when it creates a classic group (Kafka 4.4's
``classicGroupJoinToClassicGroup``).

The first JoinGroup of a group id creates the group; its join writes no record of its own (the
first rebalance waits ``group.initial.rebalance.delay.ms``, a v4+ join gets MEMBER_ID_REQUIRED), so
Kafka appends an empty GroupMetadata record (``newEmptyGroupMetadataRecord``: no protocol type, no
protocol, generation 0, no members) to commit the new group to its timeline: describe and list,
which read at the last committed offset, show the group once that record is replicated. If the
record cannot be appended the group is removed again (Kafka reverts the timeline) and the join is
answered the error; if it is appended but its replication fails, only the join is answered the
error (the group stays, as the record does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kbroker.coordinator.group_classic_model import ClassicGroup, JoinCallback, _join_error
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.join_group import JoinGroupResponse

log = logging.getLogger("kbroker.coordinator.group_classic")

# Writes the new group's empty GroupMetadata record; calls ``done`` once replicated (NONE), or with
# the client error, before returning when the append itself failed.
CreateGroup = Callable[[ClassicGroup, Callable[[ErrorCode], None]], None]


def answer_once(respond: JoinCallback) -> JoinCallback:
    """``respond``, called once at most (Kafka's response future completes once: a join already
    answered, MEMBER_ID_REQUIRED above all, keeps its answer)."""
    answered = False

    def once(response: JoinGroupResponse) -> None:
        nonlocal answered
        if not answered:
            answered = True
            respond(response)

    return once


def write_created(create: CreateGroup, group: ClassicGroup, respond: JoinCallback,
                  forget: Callable[[ClassicGroup], None]) -> None:
    """After the join that created ``group``: its empty record (``respond`` answered once)."""
    appending = True

    def written(code: ErrorCode) -> None:
        if code == ErrorCode.NONE:
            return
        log.warning("group %s: writing its empty metadata failed: %s", group.group_id, code.name)
        respond(_join_error(code))
        if appending:  # not appended: the group is gone again
            forget(group)

    create(group, written)
    appending = False
