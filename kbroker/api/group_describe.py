"""What ConsumerGroupDescribe, StreamsGroupDescribe and ShareGroupDescribe share: finding the group
to describe, or the per-group error (as Kafka's ``GroupCoordinatorService`` and
``GroupMetadataManager.<kind>GroupDescribe``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kbroker.coordinator.group_coordinator import coordinator_error
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator

G = TypeVar("G")
D = TypeVar("D")


def group_to_describe(coordinator: GroupCoordinator | None, group_id: str, group_class: type[G], label: str,
                      described: Callable[..., D], *, check_id: bool = True) -> G | D:
    """The group ``group_id`` of ``group_class``, or the ``described`` group entry (the response's
    DescribedGroup) with its error: COORDINATOR_NOT_AVAILABLE without a
    coordinator, INVALID_GROUP_ID for an empty id (when ``check_id``), the coordinator's error for
    the group's partition (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS), GROUP_ID_NOT_FOUND for a
    missing group ("Group x not found.") or one of another kind ("Group x is not a <label> group.")."""
    def error(code: ErrorCode, message: str | None = None) -> D:
        return described(group_id=group_id, error_code=code, error_message=message, members=[])

    if coordinator is None:
        return error(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    if check_id and not group_id:
        return error(ErrorCode.INVALID_GROUP_ID)
    code = coordinator_error(coordinator, group_id)
    if code != ErrorCode.NONE:
        return error(code)
    group = coordinator.groups.get(group_id)
    if not isinstance(group, group_class):
        return error(ErrorCode.GROUP_ID_NOT_FOUND,
                     f"Group {group_id} not found." if group is None else f"Group {group_id} is not a {label} group.")
    return group
