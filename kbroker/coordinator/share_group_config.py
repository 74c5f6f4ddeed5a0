"""A group's dynamic configs (ConfigResource type GROUP, 32) as its coordinator reads them.

The keys, their defaults, validation and DescribeConfigs are the configuration module's
(:mod:`kbroker.config.group_keys`); this reads a group's overrides from the metadata image and gives
the typed value a group's coordinator uses: the KIP-848 consumer and streams groups their
``consumer.*``/``streams.*`` keys (through ``MemberGroupManager._group_int``); a share group
``share.auto.offset.reset`` (``latest`` by default, ``earliest``, ``by_duration:<ISO-8601
duration>``), ``share.record.lock.duration.ms``, ``share.delivery.count.limit``,
``share.partition.max.record.locks``, ``share.session.timeout.ms``, ``share.heartbeat.interval.ms``,
``share.isolation.level`` (read_committed: up to the last stable offset, aborted transactions
archived), and ``errors.deadletterqueue.topic.name``/``copy.record.enable`` for the share group's
dead-letter queue (``share_dlq``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbroker.config.group_keys import group_value

if TYPE_CHECKING:
    from kbroker.coordinator.hosts import BrokerView


def group_config(broker: BrokerView, group_id: str) -> dict[str, str]:
    """The dynamic configs of ``group_id`` (empty without any)."""
    return dict(getattr(broker.image, "group_configs", {}).get(group_id, {}))


def effective(broker: BrokerView, group_id: str, name: str) -> Any:
    """The value of group config ``name`` for ``group_id``, typed: its override (capped to the
    broker's current bounds, as Kafka's GroupConfig.evaluate), else its default."""
    return group_value(broker.config, group_config(broker, group_id), name)
