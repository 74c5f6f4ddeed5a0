"""The share coordinator service: the share state store and the share partitions of this broker.

Built and wired by :func:`kbroker.wiring.coordinators.wire_coordinators` after the group
coordinator (which also hooks it into the group coordinator's share groups: a member leaving
releases its records, a deleted group's state goes; ``kbroker.wiring.coordinators.Coordinators``
gives it the closing connections); ``start()`` loads ``__share_group_state``.
``broker.share_coordinator`` reaches it from the API handlers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kbroker.coordinator.share_manager import ShareManager
from kbroker.coordinator.share_state import STATE_TOPIC, ShareStateStore

if TYPE_CHECKING:
    from kbroker.coordinator.hosts import BrokerView
    from kbroker.coordinator.loop_timer import LoopTimer
    from kbroker.coordinator.share_persister import PersisterHost

log = logging.getLogger(__name__)


def share_groups_enabled(broker: BrokerView) -> bool:
    """Kafka's ``isShareGroupProtocolEnabled``: the finalized ``share.version`` is at least 1."""
    version: int = broker.image.features.get("share.version", 0)
    return version >= 1


class ShareCoordinator:
    def __init__(self, broker: PersisterHost, timer: LoopTimer | None = None) -> None:
        from kbroker.coordinator.group_coordinator import LoopTimer

        self.broker = broker
        self.timer = timer or LoopTimer()
        self.store = ShareStateStore(broker, self.timer)
        self.manager = ShareManager(broker, self.timer, self.store)
        self.loaded = False

    # What Metadata auto-creation of __share_group_state uses (replication.topics._internal_defaults).
    topic_name = STATE_TOPIC

    def topic_partitions(self) -> int:
        return self.store.num_partitions

    def topic_configs(self) -> dict[str, str]:
        return self.store.topic_configs()

    def start(self) -> None:
        self.store.load()
        self._schedule_prune()
        self.loaded = True

    def _schedule_prune(self) -> None:
        self.timer.schedule("share-state-prune", self.broker.config["share.coordinator.state.topic.prune.interval.ms"],
                            self._on_prune)

    def _on_prune(self) -> None:
        try:
            moved = self.store.prune()
            if moved:
                log.info("pruned __share_group_state: log start offsets %s", moved)
        finally:
            self._schedule_prune()

    def on_partition_leadership(self, topic: str, index: int, leader: bool) -> None:
        """The broker's hook: on becoming leader of a ``__share_group_state`` partition its state is
        loaded again from the log (what the previous share coordinator wrote); on losing the
        leadership of a topic partition its share partitions go."""
        if topic == STATE_TOPIC and leader and self.loaded:
            self.store.reload_partition(index)
        if not leader and self.loaded:
            self.manager.on_leadership_lost(topic, index)

    def on_partition_deleted(self, topic: str, index: int) -> None:
        """A deleted topic's share partitions and their stored state go (Kafka deletes the share
        state of deleted topics too)."""
        if not self.loaded:
            return
        ids = {sp.topic_id for sp in self.manager.partitions.values() if sp.topic == topic}
        ids |= {tid for _g, tid, _p in self.store.states if self.broker.image.topic_by_id(tid) is None}
        for group_id, tid, p in list(self.store.states):
            if tid in ids and p == index:
                self.manager.drop_partition(group_id, tid, p)
        for (group_id, tid, p) in list(self.manager.partitions):
            if tid in ids and p == index:
                self.manager.drop_partition(group_id, tid, p)

    def stop(self) -> None:
        self.loaded = False
        self.manager.close()
        self.timer.cancel_all()
