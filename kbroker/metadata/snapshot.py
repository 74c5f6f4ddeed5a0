"""The metadata image as records, for KRaft snapshots (Kafka's ``MetadataImage.write``), and back.

``image_to_records(image)`` gives the metadata records that rebuild ``image`` exactly when applied
to an empty one, in Kafka's order: features, brokers (cluster), topics with their partitions,
configs (brokers', then topics'), producer ids. ``image_to_snapshot(image)`` adds what lives in
the Raft layer (a ``KRaftVersionRecord`` control record when kraft.version > 0) and frames the
records: it is the ``data`` ``MetadataLog.take_snapshot`` takes. ``load_snapshot(data, end)``
reads a ``.checkpoint`` content (``Snapshot.data``) into a fresh image; ``records_to_image`` does
the same from records.

What the image does not hold cannot be in the snapshot. A broker's RegisterBrokerRecord offset is the snapshot's, as in Kafka. A new field in
``MetadataImage`` must be written here too (``tests/unit/test_metadata_snapshot.py`` checks the
list of fields).
"""

from __future__ import annotations

from collections.abc import Iterable

from kbroker.config import BROKER_DEFAULTS
from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, MetadataImage
from kbroker.metadata.metadata_log import ControlRecord, decode_snapshot
from kbroker_protocol.messages.data.kraft_version_record import KRaftVersionRecord
from kbroker_protocol.messages.metadata_records import UnregisterBrokerRecord
from kbroker_protocol.records import ControlType

METADATA_VERSION = "metadata.version"


def image_to_records(image: MetadataImage) -> list[mr.MetadataRecord]:
    """The metadata records (``mr.*`` objects) that rebuild ``image`` from an empty image."""
    out: list[mr.MetadataRecord] = []
    # features: metadata.version first, as Kafka's FeaturesImage writes it
    for name in sorted(image.features, key=lambda n: (n != METADATA_VERSION, n)):
        out.append(mr.FeatureLevelRecord(name=name, feature_level=image.features[name]))
    # controller registrations (RegisterControllerRecord), as Kafka's ClusterImage writes them
    out.extend(image.controllers[c] for c in sorted(getattr(image, "controllers", {})))
    for broker_id in sorted(image.brokers):
        b = image.brokers[broker_id]
        out.append(mr.RegisterBrokerRecord(
            broker_id=b.broker_id,
            incarnation_id=b.incarnation_id,
            broker_epoch=b.epoch,
            end_points=[
                mr.RegisterBrokerRecord.BrokerEndpoint(name=name, host=host, port=port, security_protocol=proto)
                for name, (host, port, proto) in b.endpoints.items()
            ],
            features=[
                mr.RegisterBrokerRecord.BrokerFeature(name=name, min_supported_version=lo, max_supported_version=hi)
                for name, (lo, hi) in b.supported_features.items()
            ],
            rack=b.rack,
            fenced=b.fenced,
            in_controlled_shutdown=b.in_controlled_shutdown,
            log_dirs=list(b.log_dirs),
            cordoned_log_dirs=None if b.cordoned_log_dirs is None else list(b.cordoned_log_dirs),
        ))
    for name in sorted(image.topics):
        t = image.topics[name]
        out.append(mr.TopicRecord(name=t.name, topic_id=t.topic_id))
        for index in sorted(t.partitions):
            p = t.partitions[index]
            out.append(mr.PartitionRecord(
                partition_id=p.partition, topic_id=p.topic_id, replicas=list(p.replicas), isr=list(p.isr),
                leader=p.leader, leader_epoch=p.leader_epoch, partition_epoch=p.partition_epoch,
                removing_replicas=list(p.removing_replicas), adding_replicas=list(p.adding_replicas),
                leader_recovery_state=p.leader_recovery_state, directories=list(p.directories),
                eligible_leader_replicas=list(p.elr) if p.elr else None,
                last_known_elr=list(p.last_known_elr) if p.last_known_elr else None,
            ))
    for resource in sorted(image.broker_configs):
        for key, value in sorted(image.broker_configs[resource].items()):
            out.append(mr.ConfigRecord(resource_type=RESOURCE_BROKER, resource_name=resource, name=key, value=value))
    for name in sorted(image.topics):
        for key, value in sorted(image.topics[name].configs.items()):
            out.append(mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name=name, name=key, value=value))
    for resource in sorted(image.group_configs):
        for key, value in sorted(image.group_configs[resource].items()):
            out.append(mr.ConfigRecord(resource_type=RESOURCE_GROUP, resource_name=resource, name=key, value=value))
    for entity in sorted(image.client_quotas, key=_entity_order):
        for key, quota in sorted(image.client_quotas[entity].items()):
            out.append(mr.ClientQuotaRecord(entity=_quota_entity_data(entity), key=key, value=quota))
    for user_mechanism in sorted(image.scram_credentials):
        out.append(image.scram_credentials[user_mechanism])
    for acl_id in sorted(image.acls):
        out.append(image.acls[acl_id])
    for token_id in sorted(image.delegation_tokens):
        out.append(image.delegation_tokens[token_id])
    if image.next_producer_id != 0:
        # as Kafka's ProducerIdsImage: the next id only, no broker
        out.append(mr.ProducerIdsRecord(broker_id=-1, broker_epoch=-1, next_producer_id=image.next_producer_id))
    return out


def _entity_order(entity: tuple[tuple[str, str | None], ...]) -> tuple[tuple[str, bool, str], ...]:
    return tuple((kind, name is not None, name or "") for kind, name in entity)


def _quota_entity_data(entity: tuple[tuple[str, str | None], ...]) -> list[mr.ClientQuotaRecord.EntityData]:
    return [mr.ClientQuotaRecord.EntityData(entity_type=kind, entity_name=name) for kind, name in entity]


def kraft_version_control(level: int) -> ControlRecord:
    return ControlRecord(ControlType.KRAFT_VERSION, bytes(KRaftVersionRecord(version=0, kraft_version=level).encode(0)))


def image_to_snapshot(image: MetadataImage) -> list[bytes | ControlRecord]:
    """The snapshot of ``image`` as ``MetadataLog.take_snapshot`` takes it: a KRaftVersionRecord
    control record when kraft.version > 0 (Kafka writes it in the header batch), then the framed
    records of ``image_to_records``."""
    out: list[bytes | ControlRecord] = []
    if image.kraft_version > 0:
        out.append(kraft_version_control(image.kraft_version))
    out.extend(mr.encode_frame(r) for r in image_to_records(image))
    return out


def records_to_image(records: Iterable[object], end_offset: int, image: MetadataImage | None = None) -> MetadataImage:
    """A fresh image (or ``image``, which must be empty) with ``records`` applied: framed records
    (bytes), ``mr.*`` objects, or ``ControlRecord``s (kraft.version); its offset becomes
    ``end_offset - 1`` (the snapshot's last contained offset)."""
    image = MetadataImage() if image is None else image
    last = end_offset - 1
    for r in records:
        if isinstance(r, ControlRecord):
            if r.type == ControlType.KRAFT_VERSION:
                image.apply_kraft_version(KRaftVersionRecord.decode(memoryview(r.value), 0).kraft_version, last)
            continue
        record = mr.decode_frame(r) if isinstance(r, bytes | bytearray | memoryview) else r
        image.apply(record, last)
    image.offset = last
    return image


def load_snapshot(data: bytes | bytearray | memoryview, end_offset: int, image: MetadataImage | None = None) -> MetadataImage:
    """The image a ``.checkpoint`` content (``Snapshot.data`` of a ``MetadataLog``) holds; raises
    ``MetadataLogError`` for an incomplete or damaged one, ``ProtocolError`` for an undecodable
    record."""
    content = decode_snapshot(data)
    return records_to_image([*content.control_records, *content.records], end_offset, image)


def snapshot_removals(old: MetadataImage, new: MetadataImage) -> list[mr.MetadataRecord]:
    """The records that take away from ``old`` what ``new`` (a snapshot's image) no longer has:
    topics (by id: a topic deleted and created again under its name is removed, then created),
    configs, client quotas, SCRAM credentials, ACLs, delegation tokens, finalized features and broker
    registrations. Applied to the
    running image before the snapshot's own records, they give every image listener the delta
    from its state to the snapshot's, as Kafka's publishers get a ``MetadataDelta`` on
    ``handleLoadSnapshot``: the broker closes and deletes the partitions of a removed topic, the
    SCRAM and ACL caches forget what went."""
    out: list[mr.MetadataRecord] = []
    for topic in old.topics.values():
        kept = new.topics_by_id.get(topic.topic_id)
        if kept is None or kept.name != topic.name:
            out.append(mr.RemoveTopicRecord(topic_id=topic.topic_id))
            continue
        out += [mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name=topic.name, name=k, value=None)
                for k in sorted(topic.configs) if k not in kept.configs]
    for rtype, old_configs, new_configs in ((RESOURCE_BROKER, old.broker_configs, new.broker_configs),
                                            (RESOURCE_GROUP, old.group_configs, new.group_configs)):
        for resource, configs in old_configs.items():
            now = new_configs.get(resource, {})
            out += [mr.ConfigRecord(resource_type=rtype, resource_name=resource, name=k, value=None)
                    for k in sorted(configs) if k not in now]
    out += [mr.RemoveUserScramCredentialRecord(name=name, mechanism=mechanism)
            for (name, mechanism) in old.scram_credentials if (name, mechanism) not in new.scram_credentials]
    out += [mr.RemoveAccessControlEntryRecord(id=acl_id) for acl_id in old.acls if acl_id not in new.acls]
    for entity, values in old.client_quotas.items():
        now_values = new.client_quotas.get(entity, {})
        out += [mr.ClientQuotaRecord(entity=_quota_entity_data(entity), key=k, remove=True)
                for k in sorted(values) if k not in now_values]
    out += [mr.RemoveDelegationTokenRecord(token_id=token_id)
            for token_id in old.delegation_tokens if token_id not in new.delegation_tokens]
    out += [mr.FeatureLevelRecord(name=name, feature_level=0) for name in old.features if name not in new.features]
    out += [UnregisterBrokerRecord(broker_id=b.broker_id, broker_epoch=b.epoch)
            for b in old.brokers.values() if b.broker_id not in new.brokers]
    return out


# Kafka's MetadataLogConfig defaults (metadata.log.max.snapshot.interval.ms 0: no time-based snapshots)
MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS: int = BROKER_DEFAULTS["metadata.log.max.record.bytes.between.snapshots"]
MAX_SNAPSHOT_INTERVAL_MS: int = BROKER_DEFAULTS["metadata.log.max.snapshot.interval.ms"]


class SnapshotPolicy:
    """When to snapshot the image, as Kafka's ``SnapshotGenerator``: after each committed batch the
    image applied, a snapshot is due once ``max_bytes`` of records were applied since the last one,
    or, when some were, ``max_interval_ms`` after the last one (0 disables the time rule). Sans-IO:
    the caller passes the time and calls ``taken`` when it wrote the snapshot. Kafka snapshots only
    at batch boundaries (a half-applied batch is never in a snapshot); so must the caller."""

    __slots__ = ("max_bytes", "max_interval_ms", "bytes_since", "last_ms")

    def __init__(self, now_ms: int, max_bytes: int = MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS,
                 max_interval_ms: int = MAX_SNAPSHOT_INTERVAL_MS) -> None:
        if max_bytes < 1:
            raise ValueError(f"metadata.log.max.record.bytes.between.snapshots must be at least 1, not {max_bytes}")
        if max_interval_ms < 0:
            raise ValueError(f"metadata.log.max.snapshot.interval.ms must be at least 0, not {max_interval_ms}")
        self.max_bytes = max_bytes
        self.max_interval_ms = max_interval_ms
        self.bytes_since = 0
        self.last_ms = now_ms

    def applied(self, nbytes: int, now_ms: int) -> str | None:
        """A committed batch of ``nbytes`` was applied: the reason a snapshot is due now, or None."""
        self.bytes_since += nbytes
        if self.bytes_since >= self.max_bytes:
            return f"we have replayed at least {self.max_bytes} bytes"
        if self.max_interval_ms and now_ms - self.last_ms >= self.max_interval_ms:
            return f"we have waited at least {self.max_interval_ms // 60_000} minute(s)"
        return None

    def taken(self, now_ms: int) -> None:
        """The snapshot was written: the counters start again."""
        self.bytes_since = 0
        self.last_ms = now_ms
