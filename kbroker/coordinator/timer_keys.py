"""Keys of the group coordinator's keyed one-shot timers (``group_classic.Timer``).

A timer that belongs to one group (a member's session, a revocation or rebalance deadline, an
initial delay) is keyed by a :class:`GroupTimerKey`, whatever the group's kind, so unloading the
group (its ``__consumer_offsets`` partition moved away) finds and cancels all of them. The
coordinator's own timers (offsets retention, the shutdown watch) keep plain string keys."""

from __future__ import annotations

from typing import NamedTuple


class GroupTimerKey(NamedTuple):
    """``kind`` names the timer (``cg-session``, ``streams-revoke``, ``join``...); ``member_id`` is
    empty for a timer of the whole group."""

    kind: str
    group_id: str
    member_id: str = ""

    def __str__(self) -> str:
        return f"{self.kind}/{self.group_id}/{self.member_id}" if self.member_id else f"{self.kind}/{self.group_id}"


TimerKey = str | GroupTimerKey


def of_group(key: TimerKey, group_id: str) -> bool:
    """Whether ``key`` is one of ``group_id``'s timers."""
    return isinstance(key, GroupTimerKey) and key.group_id == group_id
