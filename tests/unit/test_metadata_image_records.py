"""What each metadata record does to the metadata image (kbroker/metadata/image.py), record type
by record type, against Kafka 4.4's image deltas (metadata/.../image/*Delta.java,
PartitionRegistration.merge, BrokerRegistration.cloneWith). Table-driven: each case is the records
applied before, in log order, and what the image then says. No broker, no log: the image alone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import (
    DIR_UNASSIGNED,
    RESOURCE_BROKER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    MetadataImage,
    PartitionState,
)
from kbroker_protocol.messages.metadata_records import (
    BrokerRegistrationChangeRecord,
    ClearElrRecord,
    NoOpRecord,
    RegisterControllerRecord,
    UnregisterBrokerRecord,
    UnregisterControllerRecord,
)

T1 = uuid.UUID(int=0x71)
T2 = uuid.UUID(int=0x72)
D1, D2, D3, D4 = (uuid.UUID(int=0xD0 + i) for i in range(1, 5))
INC = uuid.UUID(int=0xABC)
ACL1 = uuid.UUID(int=0xA1)


def image_of(records: list[Any]) -> MetadataImage:
    image = MetadataImage()
    for offset, record in enumerate(records):
        image.apply(record, offset)
    return image


def topic(name: str = "t", tid: uuid.UUID = T1) -> Any:
    return mr.TopicRecord(name=name, topic_id=tid)


def part(index: int = 0, tid: uuid.UUID = T1, **kw: Any) -> Any:
    fields: dict[str, Any] = dict(partition_id=index, topic_id=tid, replicas=[1, 2, 3], isr=[1, 2, 3], leader=1,
                                  leader_epoch=4, partition_epoch=7, directories=[D1, D2, D3])
    fields.update(kw)
    return mr.PartitionRecord(**fields)


def change(index: int = 0, tid: uuid.UUID = T1, **kw: Any) -> Any:
    return mr.PartitionChangeRecord(partition_id=index, topic_id=tid, **kw)


def register(broker_id: int = 1, epoch: int = 10, **kw: Any) -> Any:
    record = mr.RegisterBrokerRecord(broker_id=broker_id, broker_epoch=epoch, incarnation_id=INC, rack="r1",
                                     log_dirs=[D1, D2], **kw)
    record.end_points = [mr.RegisterBrokerRecord.BrokerEndpoint(name="PLAINTEXT", host="h", port=9000 + broker_id,
                                                                  security_protocol=0)]
    record.features = [mr.RegisterBrokerRecord.BrokerFeature(name="metadata.version", min_supported_version=7,
                                                               max_supported_version=27)]
    return record


def reg_change(broker_id: int = 1, epoch: int = 10, **kw: Any) -> Any:
    return BrokerRegistrationChangeRecord(broker_id=broker_id, broker_epoch=epoch, **kw)


def config(rtype: int, resource: str, name: str, value: str | None) -> Any:
    return mr.ConfigRecord(resource_type=rtype, resource_name=resource, name=name, value=value)


def quota(key: str, value: float = 0.0, remove: bool = False, user: str | None = "alice") -> Any:
    return mr.ClientQuotaRecord(entity=[mr.ClientQuotaRecord.EntityData(entity_type="user", entity_name=user)],
                                key=key, value=value, remove=remove)


def p0(image: MetadataImage) -> PartitionState:
    p = image.partition("t", 0)
    assert p is not None
    return p


@dataclass(frozen=True)
class Case:
    id: str
    records: list[Any]
    expect: Callable[[MetadataImage], object]  # a value the case compares with ``want``
    want: object


def partition_view(image: MetadataImage) -> tuple[object, ...]:
    p = p0(image)
    return (p.replicas, p.isr, p.leader, p.leader_epoch, p.partition_epoch, p.directories, p.elr,
            p.last_known_elr, p.adding_replicas, p.removing_replicas, p.leader_recovery_state)


def broker_view(image: MetadataImage) -> tuple[object, ...]:
    b = image.brokers[1]
    return (b.fenced, b.in_controlled_shutdown, b.log_dirs, b.cordoned_log_dirs, b.epoch)


BASE_PARTITION = ([1, 2, 3], [1, 2, 3], 1, 4, 7, [D1, D2, D3], [], [], [], [], 0)

CASES = [
    # -- topics and partitions (TopicsDelta, TopicDelta, PartitionRegistration) --------------
    Case("topic-record-creates-topic", [topic()],
         lambda i: (list(i.topics), i.topics["t"].topic_id, i.topic_by_id(T1) is i.topics["t"], i.topics["t"].partitions),
         (["t"], T1, True, {})),
    Case("topic-record-of-the-metadata-log-is-ignored", [mr.TopicRecord(name="__cluster_metadata", topic_id=T2),
                                                        mr.PartitionRecord(partition_id=0, topic_id=T2, replicas=[1],
                                                                           isr=[1], leader=1)],
         lambda i: (i.topics, i.topics_by_id), ({}, {})),
    Case("internal-topic-is-internal", [topic("__consumer_offsets")],
         lambda i: i.topics["__consumer_offsets"].is_internal, True),
    Case("partition-record-sets-every-field",
         [topic(), part(eligible_leader_replicas=[4], last_known_elr=[5], adding_replicas=[3], removing_replicas=[2],
                        leader_recovery_state=1)],
         partition_view, ([1, 2, 3], [1, 2, 3], 1, 4, 7, [D1, D2, D3], [4], [5], [3], [2], 1)),
    Case("partition-record-null-elr-is-empty", [topic(), part()], partition_view, BASE_PARTITION),
    Case("partition-record-of-unknown-topic-is-dropped", [topic(), part(tid=T2)],
         lambda i: (i.topics["t"].partitions, i.topic_by_id(T2)), ({}, None)),
    Case("partition-record-again-replaces", [topic(), part(), part(replicas=[5], isr=[5], leader=5, leader_epoch=9,
                                                                 partition_epoch=11, directories=[D4])],
         lambda i: (p0(i).replicas, p0(i).leader, p0(i).leader_epoch, p0(i).partition_epoch, p0(i).directories),
         ([5], 5, 9, 11, [D4])),
    # PartitionChangeRecord: as PartitionRegistration.merge, every record bumps the partition
    # epoch; a leader field (even the same leader) bumps the leader epoch.
    Case("change-isr-only", [topic(), part(), change(isr=[1, 2])],
         partition_view, ([1, 2, 3], [1, 2], 1, 4, 8, [D1, D2, D3], [], [], [], [], 0)),
    Case("change-leader-bumps-leader-epoch", [topic(), part(), change(leader=2)],
         partition_view, ([1, 2, 3], [1, 2, 3], 2, 5, 8, [D1, D2, D3], [], [], [], [], 0)),
    Case("change-same-leader-still-bumps-leader-epoch", [topic(), part(), change(leader=1)],
         lambda i: (p0(i).leader, p0(i).leader_epoch, p0(i).partition_epoch), (1, 5, 8)),
    Case("change-no-leader", [topic(), part(), change(leader=-1, isr=[])],
         lambda i: (p0(i).leader, p0(i).leader_epoch, p0(i).isr), (-1, 5, [])),
    Case("change-nothing-still-bumps-partition-epoch", [topic(), part(), change()],
         partition_view, ([1, 2, 3], [1, 2, 3], 1, 4, 8, [D1, D2, D3], [], [], [], [], 0)),
    Case("two-changes-two-epochs", [topic(), part(), change(isr=[1]), change(leader=3, isr=[3])],
         lambda i: (p0(i).isr, p0(i).leader, p0(i).leader_epoch, p0(i).partition_epoch), ([3], 3, 5, 9)),
    Case("change-reassignment-lists", [topic(), part(), change(replicas=[1, 2, 3, 4], adding_replicas=[4],
                                                              removing_replicas=[1], directories=[D1, D2, D3, D4])],
         partition_view, ([1, 2, 3, 4], [1, 2, 3], 1, 4, 8, [D1, D2, D3, D4], [], [], [4], [1], 0)),
    Case("change-empty-lists-clear-them", [topic(), part(adding_replicas=[3], removing_replicas=[2]),
                                           change(adding_replicas=[], removing_replicas=[])],
         lambda i: (p0(i).adding_replicas, p0(i).removing_replicas), ([], [])),
    Case("change-elr-and-last-known-elr", [topic(), part(), change(isr=[1], eligible_leader_replicas=[2, 3],
                                                                  last_known_elr=[3])],
         lambda i: (p0(i).isr, p0(i).elr, p0(i).last_known_elr), ([1], [2, 3], [3])),
    Case("change-leader-recovery-state", [topic(), part(), change(leader=2, leader_recovery_state=1)],
         lambda i: p0(i).leader_recovery_state, 1),
    Case("change-default-leader-recovery-state-keeps-it", [topic(), part(leader_recovery_state=1), change(isr=[1])],
         lambda i: p0(i).leader_recovery_state, 1),
    Case("change-directories-only", [topic(), part(), change(directories=[D4, D2, D3])],
         lambda i: (p0(i).replicas, p0(i).directories, p0(i).partition_epoch), ([1, 2, 3], [D4, D2, D3], 8)),
    Case("change-replicas-with-directories", [topic(), part(), change(replicas=[2, 3, 4], isr=[2, 3],
                                                                     leader=2, directories=[D2, D3, D4])],
         lambda i: (p0(i).replicas, p0(i).directories), ([2, 3, 4], [D2, D3, D4])),
    # Kafka's PartitionChangeBuilder always writes the directories with new replicas; without them
    # the image keeps the known ones and marks the new replica UNASSIGNED.
    Case("change-replicas-without-directories", [topic(), part(), change(replicas=[3, 1, 4])],
         lambda i: p0(i).directories, [D3, D1, DIR_UNASSIGNED]),
    Case("change-replicas-before-directories-exist", [topic(), part(directories=[]), change(replicas=[1, 2])],
         lambda i: p0(i).directories, []),
    Case("change-of-unknown-partition-is-dropped", [topic(), part(), change(index=5, leader=2)],
         lambda i: (sorted(i.topics["t"].partitions), p0(i).leader, p0(i).partition_epoch), ([0], 1, 7)),
    Case("change-of-unknown-topic-is-dropped", [topic(), part(), change(tid=T2, leader=2)],
         partition_view, BASE_PARTITION),
    # ClearElrRecord (TopicsDelta.replay(ClearElrRecord)): partitions with an ELR or last known ELR
    # lose both through a merge (partition epoch + 1); the others do not change.
    Case("clear-elr-of-one-topic",
         [topic(), topic("u", T2), part(eligible_leader_replicas=[2], last_known_elr=[3]), part(1),
          part(0, T2, last_known_elr=[2]), ClearElrRecord(topic_name="t")],
         lambda i: [(n, p.partition, p.elr, p.last_known_elr, p.partition_epoch, p.leader_epoch)
                    for n, t in sorted(i.topics.items()) for p in t.partitions.values()],
         [("t", 0, [], [], 8, 4), ("t", 1, [], [], 7, 4), ("u", 0, [], [2], 7, 4)]),
    Case("clear-elr-of-all-topics",
         [topic(), topic("u", T2), part(eligible_leader_replicas=[2]), part(0, T2, last_known_elr=[2]),
          ClearElrRecord(topic_name="")],
         lambda i: [(n, p.elr, p.last_known_elr, p.partition_epoch)
                    for n, t in sorted(i.topics.items()) for p in t.partitions.values()],
         [("t", [], [], 8), ("u", [], [], 8)]),
    Case("clear-elr-of-unknown-topic-changes-nothing",
         [topic(), part(eligible_leader_replicas=[2]), ClearElrRecord(topic_name="nope")],
         lambda i: (p0(i).elr, p0(i).partition_epoch), ([2], 7)),
    Case("remove-topic", [topic(), part(), config(RESOURCE_TOPIC, "t", "retention.ms", "1"),
                          mr.RemoveTopicRecord(topic_id=T1)],
         lambda i: (i.topics, i.topics_by_id, i.partition("t", 0)), ({}, {}, None)),
    Case("remove-topic-then-recreate-has-no-old-config",
         [topic(), config(RESOURCE_TOPIC, "t", "retention.ms", "1"), mr.RemoveTopicRecord(topic_id=T1), topic("t", T2)],
         lambda i: (i.topics["t"].topic_id, i.topics["t"].configs, i.topic_by_id(T1)), (T2, {}, None)),
    Case("remove-unknown-topic-changes-nothing", [topic(), mr.RemoveTopicRecord(topic_id=T2)],
         lambda i: list(i.topics), ["t"]),
    # -- configs (ConfigurationsDelta) ---------------------------------------------------------
    Case("topic-config-set", [topic(), config(RESOURCE_TOPIC, "t", "cleanup.policy", "compact")],
         lambda i: i.topics["t"].configs, {"cleanup.policy": "compact"}),
    Case("topic-config-set-twice-keeps-last", [topic(), config(RESOURCE_TOPIC, "t", "retention.ms", "1"),
                                               config(RESOURCE_TOPIC, "t", "retention.ms", "2")],
         lambda i: i.topics["t"].configs, {"retention.ms": "2"}),
    Case("topic-config-delete", [topic(), config(RESOURCE_TOPIC, "t", "retention.ms", "1"),
                                 config(RESOURCE_TOPIC, "t", "segment.ms", "5"),
                                 config(RESOURCE_TOPIC, "t", "retention.ms", None)],
         lambda i: i.topics["t"].configs, {"segment.ms": "5"}),
    Case("broker-config-set-and-cluster-default", [config(RESOURCE_BROKER, "1", "log.cleaner.threads", "2"),
                                                   config(RESOURCE_BROKER, "", "min.insync.replicas", "2")],
         lambda i: i.broker_configs, {"1": {"log.cleaner.threads": "2"}, "": {"min.insync.replicas": "2"}}),
    # ConfigurationsDelta.apply drops a resource left with no config (a snapshot holds none of it)
    Case("broker-config-delete-last-drops-resource", [config(RESOURCE_BROKER, "1", "log.cleaner.threads", "2"),
                                                      config(RESOURCE_BROKER, "1", "log.cleaner.threads", None)],
         lambda i: i.broker_configs, {}),
    Case("broker-config-delete-unknown", [config(RESOURCE_BROKER, "1", "x", None)], lambda i: i.broker_configs, {}),
    Case("group-config-set-delete", [config(RESOURCE_GROUP, "g", "share.record.lock.duration.ms", "15000"),
                                     config(RESOURCE_GROUP, "g", "share.auto.offset.reset", "earliest"),
                                     config(RESOURCE_GROUP, "g", "share.auto.offset.reset", None),
                                     config(RESOURCE_GROUP, "h", "share.auto.offset.reset", "latest"),
                                     config(RESOURCE_GROUP, "h", "share.auto.offset.reset", None)],
         lambda i: i.group_configs, {"g": {"share.record.lock.duration.ms": "15000"}}),
    Case("config-of-other-resource-type-is-ignored", [config(8, "c", "k", "v")],
         lambda i: (i.broker_configs, i.group_configs), ({}, {})),
    # -- brokers (ClusterDelta, BrokerRegistration.cloneWith) ---------------------------------
    Case("register-broker", [NoOpRecord(), register()],
         lambda i: (lambda b: (b.broker_id, b.epoch, b.incarnation_id, b.endpoints, b.rack, b.fenced,
                               b.supported_features, b.in_controlled_shutdown, b.log_dirs, b.cordoned_log_dirs,
                               b.register_offset))(i.brokers[1]),
         (1, 10, INC, {"PLAINTEXT": ("h", 9001, 0)}, "r1", True, {"metadata.version": (7, 27)}, False, [D1, D2],
          None, 1)),
    Case("re-register-replaces-registration", [register(), register(epoch=20, fenced=False)],
         lambda i: (i.brokers[1].epoch, i.brokers[1].fenced, i.brokers[1].register_offset), (20, False, 1)),
    Case("unfence-broker-record", [register(), mr.UnfenceBrokerRecord(id=1, epoch=10)], broker_view,
         (False, False, [D1, D2], None, 10)),
    Case("fence-broker-record", [register(fenced=False), mr.FenceBrokerRecord(id=1, epoch=10)], broker_view,
         (True, False, [D1, D2], None, 10)),
    Case("unfence-at-another-epoch-is-dropped", [register(), mr.UnfenceBrokerRecord(id=1, epoch=9)],
         lambda i: i.brokers[1].fenced, True),
    Case("fence-unknown-broker-is-dropped", [register(fenced=False), mr.FenceBrokerRecord(id=2, epoch=10)],
         lambda i: (sorted(i.brokers), i.brokers[1].fenced), ([1], False)),
    Case("registration-change-unfence", [register(), reg_change(fenced=-1)], broker_view,
         (False, False, [D1, D2], None, 10)),
    Case("registration-change-fence", [register(fenced=False), reg_change(fenced=1)], broker_view,
         (True, False, [D1, D2], None, 10)),
    Case("registration-change-none-keeps-fencing", [register(fenced=False), reg_change(fenced=0)], broker_view,
         (False, False, [D1, D2], None, 10)),
    Case("registration-change-controlled-shutdown", [register(fenced=False), reg_change(in_controlled_shutdown=1)],
         broker_view, (False, True, [D1, D2], None, 10)),
    Case("registration-change-shutdown-none-keeps-it", [register(fenced=False), reg_change(in_controlled_shutdown=1),
                                                        reg_change(fenced=1, in_controlled_shutdown=0)],
         broker_view, (True, True, [D1, D2], None, 10)),
    Case("registration-change-log-dirs", [register(), reg_change(log_dirs=[D3])], broker_view,
         (True, False, [D3], None, 10)),
    Case("registration-change-empty-log-dirs-keeps-them", [register(), reg_change(log_dirs=[])], broker_view,
         (True, False, [D1, D2], None, 10)),
    Case("registration-change-cordoned-dirs", [register(), reg_change(cordoned_log_dirs=[D2])], broker_view,
         (True, False, [D1, D2], [D2], 10)),
    Case("registration-change-empty-cordoned-dirs-is-a-change",
         [register(cordoned_log_dirs=[D2]), reg_change(cordoned_log_dirs=[])], broker_view,
         (True, False, [D1, D2], [], 10)),
    Case("registration-change-null-cordoned-dirs-keeps-them",
         [register(cordoned_log_dirs=[D2]), reg_change(fenced=-1)], broker_view,
         (False, False, [D1, D2], [D2], 10)),
    Case("registration-change-at-another-epoch-is-dropped", [register(), reg_change(epoch=11, fenced=-1)],
         lambda i: i.brokers[1].fenced, True),
    Case("registration-change-unknown-fenced-value-is-dropped", [register(), reg_change(fenced=2, log_dirs=[D3])],
         broker_view, (True, False, [D1, D2], None, 10)),
    Case("registration-change-unknown-shutdown-value-is-dropped",
         [register(), reg_change(in_controlled_shutdown=-1, fenced=-1)], broker_view,
         (True, False, [D1, D2], None, 10)),
    Case("unregister-broker", [register(), register(2), UnregisterBrokerRecord(broker_id=1, broker_epoch=10)],
         lambda i: sorted(i.brokers), [2]),
    # ClusterControlManager.replay(UnregisterBrokerRecord) fails on an epoch mismatch
    Case("unregister-at-another-epoch-is-dropped", [register(), UnregisterBrokerRecord(broker_id=1, broker_epoch=9)],
         lambda i: sorted(i.brokers), [1]),
    # -- controllers ---------------------------------------------------------------------------
    Case("register-controller", [RegisterControllerRecord(controller_id=3000, incarnation_id=INC)],
         lambda i: (sorted(i.controllers), i.controllers[3000].incarnation_id), ([3000], INC)),
    Case("unregister-controller", [RegisterControllerRecord(controller_id=3000), RegisterControllerRecord(controller_id=3001),
                                   UnregisterControllerRecord(controller_id=3000)],
         lambda i: sorted(i.controllers), [3001]),
    # -- features (FeaturesDelta) --------------------------------------------------------------
    Case("feature-level-set", [mr.FeatureLevelRecord(name="metadata.version", feature_level=27),
                               mr.FeatureLevelRecord(name="share.version", feature_level=1)],
         lambda i: i.finalized_features(), {"metadata.version": 27, "share.version": 1}),
    Case("feature-level-zero-removes", [mr.FeatureLevelRecord(name="share.version", feature_level=1),
                                        mr.FeatureLevelRecord(name="share.version", feature_level=0)],
         lambda i: i.features, {}),
    Case("feature-level-kraft-version-is-skipped", [mr.FeatureLevelRecord(name="kraft.version", feature_level=1)],
         lambda i: (i.features, i.finalized_features()), ({}, {})),
    # -- producer ids (ProducerIdsDelta) -------------------------------------------------------
    Case("producer-ids", [mr.ProducerIdsRecord(broker_id=1, broker_epoch=10, next_producer_id=1000),
                          mr.ProducerIdsRecord(broker_id=2, broker_epoch=3, next_producer_id=2000)],
         lambda i: i.next_producer_id, 2000),
    # -- client quotas (ClientQuotasDelta) -----------------------------------------------------
    Case("quota-set", [quota("producer_byte_rate", 1024.0), quota("consumer_byte_rate", 2048.0, user=None)],
         lambda i: i.client_quotas, {(("user", "alice"),): {"producer_byte_rate": 1024.0},
                                     (("user", None),): {"consumer_byte_rate": 2048.0}}),
    Case("quota-remove-one-key", [quota("producer_byte_rate", 1.0), quota("request_percentage", 5.0),
                                  quota("producer_byte_rate", remove=True)],
         lambda i: i.client_quotas, {(("user", "alice"),): {"request_percentage": 5.0}}),
    Case("quota-remove-last-key-drops-entity", [quota("producer_byte_rate", 1.0), quota("producer_byte_rate", remove=True)],
         lambda i: i.client_quotas, {}),
    Case("quota-entity-is-keyed-by-sorted-type",
         [mr.ClientQuotaRecord(entity=[mr.ClientQuotaRecord.EntityData(entity_type="user", entity_name="u"),
                                       mr.ClientQuotaRecord.EntityData(entity_type="client-id", entity_name="c")],
                               key="producer_byte_rate", value=1.0)],
         lambda i: list(i.client_quotas), [(("client-id", "c"), ("user", "u"))]),
    # -- ACLs (AclsDelta) ----------------------------------------------------------------------
    Case("acl-add-remove", [mr.AccessControlEntryRecord(id=ACL1, resource_type=2, resource_name="t", pattern_type=3,
                                                        principal="User:a", host="*", operation=3, permission_type=3),
                            mr.AccessControlEntryRecord(id=T2, resource_type=2, resource_name="u", pattern_type=3,
                                                        principal="User:a", host="*", operation=3, permission_type=3),
                            mr.RemoveAccessControlEntryRecord(id=ACL1)],
         lambda i: {k: v.resource_name for k, v in i.acls.items()}, {T2: "u"}),
    # -- SCRAM (ScramDelta) --------------------------------------------------------------------
    Case("scram-set-replace-remove",
         [mr.UserScramCredentialRecord(name="a", mechanism=1, salt=b"s", stored_key=b"k1", server_key=b"v", iterations=4096),
          mr.UserScramCredentialRecord(name="a", mechanism=2, salt=b"s", stored_key=b"k2", server_key=b"v", iterations=4096),
          mr.UserScramCredentialRecord(name="a", mechanism=1, salt=b"s", stored_key=b"k3", server_key=b"v", iterations=8192),
          mr.RemoveUserScramCredentialRecord(name="a", mechanism=2)],
         lambda i: {k: (v.stored_key, v.iterations) for k, v in i.scram_credentials.items()},
         {("a", 1): (b"k3", 8192)}),
    # -- delegation tokens (DelegationTokenDelta) ----------------------------------------------
    Case("delegation-token-set-replace-remove",
         [mr.DelegationTokenRecord(token_id="t1", owner="User:a", expiration_timestamp=10),
          mr.DelegationTokenRecord(token_id="t2", owner="User:b", expiration_timestamp=20),
          mr.DelegationTokenRecord(token_id="t1", owner="User:a", expiration_timestamp=30),
          mr.RemoveDelegationTokenRecord(token_id="t2")],
         lambda i: {k: v.expiration_timestamp for k, v in i.delegation_tokens.items()}, {"t1": 30}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_record_changes_the_image(case: Case) -> None:
    image = image_of(case.records)
    assert case.expect(image) == case.want
    assert image.offset == len(case.records) - 1


def test_every_record_type_with_an_image_handler_has_a_case() -> None:
    """The table covers each record type ``MetadataImage.apply`` handles (a new handler needs a case)."""
    handled = {name.removeprefix("_apply_") for name in dir(MetadataImage) if name.startswith("_apply_")}
    covered = {type(r).__name__ for c in CASES for r in c.records}
    assert handled - covered == set()


def test_apply_drops_derived_answers_and_calls_listeners_with_each_record() -> None:
    image = MetadataImage()
    seen: list[object] = []
    image.listeners.append(seen.append)
    image.derived["x"] = 1
    first, second = topic(), NoOpRecord()
    image.apply(first, 5)
    assert image.derived == {}
    image.derived["x"] = 1
    image.apply(second, 6)
    assert (seen, image.derived, image.offset) == ([first, second], {}, 6)


def test_a_record_with_no_handler_moves_the_offset_only() -> None:
    image = image_of([topic(), part()])
    before = partition_view(image)
    image.apply(NoOpRecord(), 9)
    assert (image.offset, partition_view(image), list(image.topics)) == (9, before, ["t"])


def test_a_partition_change_leaves_a_copy_of_the_image_alone() -> None:
    image = image_of([topic(), part(), register(), config(RESOURCE_BROKER, "1", "k", "v")])
    copy = image.copy()
    for offset, record in enumerate([change(isr=[1], replicas=[1, 2]), reg_change(fenced=-1),
                                     config(RESOURCE_BROKER, "1", "k", "w")], 10):
        image.apply(record, offset)
    assert partition_view(copy) == BASE_PARTITION
    assert (copy.brokers[1].fenced, copy.broker_configs, copy.offset) == (True, {"1": {"k": "v"}}, 3)
