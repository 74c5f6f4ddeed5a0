"""image_to_records / load_snapshot: random record sequences applied to an image, snapshotted,
loaded into a fresh image: the two images are equal, and so are their snapshots."""

from __future__ import annotations

import random
import uuid

import pytest

from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, MetadataImage
from kbroker.metadata.metadata_log import MetadataLog, MetadataLogError, encode_snapshot
from kbroker.metadata.snapshot import (
    image_to_records,
    image_to_snapshot,
    load_snapshot,
    records_to_image,
)
from kbroker.raft.log import Entry
from kbroker_protocol.messages import metadata_records

# Every attribute of MetadataImage and whether the snapshot carries it. A new field must be added
# here and to image_to_records (or listed as not state).
STATE_FIELDS = {"topics", "topics_by_id", "brokers", "broker_configs", "group_configs", "scram_credentials",
                "acls", "client_quotas", "delegation_tokens", "features", "kraft_version", "next_producer_id",
                "offset", "controllers"}
NOT_STATE = {"listeners", "derived"}  # (derived: answers cached from the image, issue 23)


def image_state(image: MetadataImage) -> dict:
    return {
        "topics": {n: (t.name, t.topic_id, dict(t.configs),
                       {i: (p.topic_id, p.partition, p.replicas, p.isr, p.leader, p.leader_epoch, p.partition_epoch)
                        for i, p in t.partitions.items()})
                   for n, t in image.topics.items()},
        "topics_by_id": {i: t.name for i, t in image.topics_by_id.items()},
        "brokers": {b: (r.broker_id, r.incarnation_id, r.epoch, list(r.endpoints.items()), r.rack, r.fenced,
                        list(r.supported_features.items()))
                    for b, r in image.brokers.items()},
        "broker_configs": {k: dict(v) for k, v in image.broker_configs.items() if v},
        "group_configs": {k: dict(v) for k, v in image.group_configs.items() if v},
        "scram_credentials": {k: (r.name, r.mechanism, bytes(r.salt), bytes(r.stored_key), bytes(r.server_key),
                                  r.iterations) for k, r in image.scram_credentials.items()},
        "acls": {k: (r.resource_type, r.resource_name, r.pattern_type, r.principal, r.host, r.operation,
                     r.permission_type) for k, r in image.acls.items()},
        "client_quotas": {k: dict(v) for k, v in image.client_quotas.items()},
        "delegation_tokens": {k: (r.token_id, r.owner, r.requester, list(r.renewers), r.issue_timestamp,
                                  r.max_timestamp, r.expiration_timestamp)
                              for k, r in image.delegation_tokens.items()},
        "features": dict(image.features),
        "controllers": {c: (r.controller_id, r.incarnation_id, [(e.name, e.host, e.port, e.security_protocol)
                                                                for e in r.end_points],
                            [(f.name, f.min_supported_version, f.max_supported_version) for f in r.features])
                        for c, r in image.controllers.items()},
        "kraft_version": image.kraft_version,
        "next_producer_id": image.next_producer_id,
        "offset": image.offset,
    }


def test_the_state_fields_are_all_known():
    image = MetadataImage()
    fields = set(getattr(image, "__dict__", {})) | {s for s in getattr(type(image), "__slots__", ())}
    assert fields == STATE_FIELDS | NOT_STATE
    assert set(image_state(image)) == STATE_FIELDS


class RandomHistory:
    """Random but valid metadata records, as a controller would write them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.image = MetadataImage()
        self.offset = 0
        self.frames: list[bytes] = []  # the records applied, framed (not the kraft.version changes)

    def apply(self, record) -> None:
        # through the frame, as the log carries it
        frame = mr.encode_frame(record)
        self.frames.append(frame)
        self.image.apply(mr.decode_frame(frame), self.offset)
        self.offset += 1

    def step(self) -> None:
        rng, image = self.rng, self.image
        topics = sorted(image.topics)
        brokers = sorted(image.brokers) or [1]
        choice = rng.randrange(18)
        if choice == 0:
            self.apply(mr.FeatureLevelRecord(name=rng.choice(["metadata.version", "group.version", "transaction.version",
                                                              "kraft.version"]),
                                             feature_level=rng.choice([0, 1, 2, 27])))
        elif choice == 1:
            b = rng.randrange(1, 6)
            self.apply(mr.RegisterBrokerRecord(
                broker_id=b, incarnation_id=uuid.UUID(int=rng.getrandbits(128)), broker_epoch=rng.randrange(1000),
                end_points=[mr.RegisterBrokerRecord.BrokerEndpoint(name=n, host=f"h{b}", port=9000 + i, security_protocol=i)
                            for i, n in enumerate(rng.sample(["PLAINTEXT", "SSL", "INTERNAL"], rng.randrange(1, 4)))],
                features=[mr.RegisterBrokerRecord.BrokerFeature(name=n, min_supported_version=rng.randrange(2),
                                                                max_supported_version=rng.randrange(2, 30))
                          for n in rng.sample(["metadata.version", "kraft.version", "group.version"], rng.randrange(4))],
                rack=rng.choice([None, "r1", "r2"]), fenced=rng.random() < 0.5,
            ))
        elif choice == 2:
            self.apply(rng.choice([mr.FenceBrokerRecord, mr.UnfenceBrokerRecord])(id=rng.choice(brokers), epoch=0))
        elif choice in (3, 4):
            name = f"t{rng.randrange(8)}"
            if name in image.topics:
                return
            tid = uuid.UUID(int=rng.getrandbits(128))
            self.apply(mr.TopicRecord(name=name, topic_id=tid))
            for p in range(rng.randrange(1, 4)):
                replicas = rng.sample(brokers, min(len(brokers), rng.randrange(1, 4)))
                self.apply(mr.PartitionRecord(partition_id=p, topic_id=tid, replicas=replicas, isr=replicas[:1],
                                              leader=replicas[0], leader_epoch=rng.randrange(3),
                                              partition_epoch=rng.randrange(3)))
        elif choice == 5 and topics:
            self.apply(mr.RemoveTopicRecord(topic_id=image.topics[rng.choice(topics)].topic_id))
        elif choice in (6, 7) and topics:
            t = image.topics[rng.choice(topics)]
            p = rng.choice(sorted(t.partitions))
            self.apply(mr.PartitionChangeRecord(
                partition_id=p, topic_id=t.topic_id,
                isr=rng.choice([None, rng.sample(brokers, 1)]),
                leader=rng.choice([-2, -1, *brokers]),
                replicas=rng.choice([None, rng.sample(brokers, min(2, len(brokers)))]),
            ))
        elif choice == 8 and topics:
            self.apply(mr.ConfigRecord(resource_type=RESOURCE_TOPIC, resource_name=rng.choice(topics),
                                       name=rng.choice(["retention.ms", "cleanup.policy"]),
                                       value=rng.choice([None, "1000", "compact"])))
        elif choice == 9:
            self.apply(mr.ConfigRecord(resource_type=RESOURCE_BROKER, resource_name=rng.choice(["", "1", "2"]),
                                       name=rng.choice(["log.retention.ms", "num.io.threads"]),
                                       value=rng.choice([None, "8", "1000"])))
        elif choice == 10:
            self.apply(mr.ProducerIdsRecord(broker_id=rng.choice(brokers), broker_epoch=1,
                                            next_producer_id=self.image.next_producer_id + 1000))
        elif choice == 11:
            self.image.apply_kraft_version(rng.choice([0, 1]), self.offset)
            self.offset += 1
        elif choice == 12:
            self.apply(mr.ConfigRecord(resource_type=RESOURCE_GROUP, resource_name=rng.choice(["g1", "g2"]),
                                       name=rng.choice(["share.auto.offset.reset", "share.record.lock.duration.ms"]),
                                       value=rng.choice([None, "earliest", "15000"])))
        elif choice == 13:
            user, mechanism = rng.choice(["alice", "bob"]), rng.choice([1, 2])
            if rng.random() < 0.3:
                if (user, mechanism) in self.image.scram_credentials:
                    self.apply(mr.RemoveUserScramCredentialRecord(name=user, mechanism=mechanism))
            else:
                self.apply(mr.UserScramCredentialRecord(name=user, mechanism=mechanism, salt=rng.randbytes(8),
                                                        stored_key=rng.randbytes(32), server_key=rng.randbytes(32),
                                                        iterations=rng.choice([4096, 8192])))
        elif choice == 17:
            c = rng.randrange(1, 4)
            if c in self.image.controllers and rng.random() < 0.4:
                self.apply(metadata_records.UnregisterControllerRecord(controller_id=c))
            else:
                C = metadata_records.RegisterControllerRecord
                self.apply(C(controller_id=c, incarnation_id=uuid.UUID(int=rng.getrandbits(128)),
                             end_points=[C.ControllerEndpoint(name="CONTROLLER", host=f"c{c}", port=9100 + c,
                                                              security_protocol=0)],
                             features=[C.ControllerFeature(name="kraft.version", min_supported_version=0,
                                                           max_supported_version=1)]))
        elif choice == 14:
            if self.image.acls and rng.random() < 0.3:
                self.apply(mr.RemoveAccessControlEntryRecord(id=rng.choice(sorted(self.image.acls))))
            else:
                self.apply(mr.AccessControlEntryRecord(
                    id=uuid.UUID(int=rng.getrandbits(128)), resource_type=rng.choice([2, 3]),
                    resource_name=rng.choice(["t1", "g", "*"]), pattern_type=rng.choice([3, 4]),
                    principal=rng.choice(["User:alice", "User:*"]), host="*", operation=rng.choice([2, 3, 4]),
                    permission_type=rng.choice([2, 3])))
        elif choice == 15:
            entity = rng.choice([[("user", "alice")], [("user", None)], [("client-id", "c1")],
                                 [("user", "bob"), ("client-id", None)], [("client-id", "c1"), ("user", None)],
                                 [("ip", "10.0.0.1")], [("ip", None)]])
            key = "connection_creation_rate" if entity[0][0] == "ip" else rng.choice(
                ["producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate"])
            self.apply(mr.ClientQuotaRecord(
                entity=[mr.ClientQuotaRecord.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                key=key, value=float(rng.randrange(1, 5000)), remove=rng.random() < 0.3))
        elif choice == 16:
            token_id = rng.choice(["tok-a", "tok-b", "tok-c"])
            if token_id in self.image.delegation_tokens and rng.random() < 0.3:
                self.apply(mr.RemoveDelegationTokenRecord(token_id=token_id))
            else:
                issued = rng.randrange(10**12)
                self.apply(mr.DelegationTokenRecord(
                    token_id=token_id, owner=rng.choice(["User:alice", "User:bob"]), requester="User:admin",
                    renewers=rng.sample(["User:carol", "User:dave"], rng.randrange(3)), issue_timestamp=issued,
                    max_timestamp=issued + 1000, expiration_timestamp=issued + rng.randrange(1000)))


@pytest.mark.parametrize("seed", range(200))
def test_random_histories_survive_a_snapshot(seed):
    history = RandomHistory(random.Random(seed))
    for _ in range(random.Random(seed).randrange(1, 80)):
        history.step()
    image = history.image
    end = image.offset + 1
    data = encode_snapshot(image_to_snapshot(image), epoch=3)
    loaded = load_snapshot(data, end)
    assert image_state(loaded) == image_state(image)
    # and the loaded image writes the same snapshot again
    assert image_to_records(loaded) == image_to_records(image)
    assert image_to_snapshot(loaded) == image_to_snapshot(image)


def test_an_empty_image_is_an_empty_snapshot():
    assert image_to_records(MetadataImage()) == []
    loaded = records_to_image([], 0)
    assert image_state(loaded) == image_state(MetadataImage())


def test_snapshot_through_the_metadata_log_and_a_restart(tmp_path):
    """The controller's flow: records committed in the log, the image snapshotted at the end of
    what it applied, the log reopened: the snapshot loads the same image, and replaying the log
    tail after it on top gives the image of the whole log."""
    log = MetadataLog(tmp_path / "__cluster_metadata-0")
    image = MetadataImage()
    history = RandomHistory(random.Random(7))
    for _ in range(80):
        history.step()
    records = history.frames
    assert len(records) > 50
    log.append([Entry(1, f) for f in records])
    log.flush()
    for i, f in enumerate(records[:40]):
        image.apply(mr.decode_frame(f), i)
    log.take_snapshot(40, image_to_snapshot(image))
    log.close()
    reopened = MetadataLog(tmp_path / "__cluster_metadata-0")
    assert reopened.start_offset == 40
    loaded = load_snapshot(reopened.snapshot.data, reopened.snapshot.end_offset)
    assert image_state(loaded) == image_state(image)
    for o in range(40, reopened.end_offset):
        loaded.apply(mr.decode_frame(reopened.entry(o).value), o)
        image.apply(mr.decode_frame(records[o]), o)
    assert image_state(loaded) == image_state(image)
    reopened.close()


def test_a_damaged_snapshot_is_refused():
    data = bytearray(encode_snapshot([mr.encode_frame(mr.TopicRecord(name="t", topic_id=uuid.uuid4()))], 1))
    data[-30] ^= 0xFF
    with pytest.raises(MetadataLogError):
        load_snapshot(bytes(data), 5)


def test_snapshot_policy_by_bytes_and_by_time():
    from kbroker.metadata.snapshot import SnapshotPolicy

    p = SnapshotPolicy(now_ms=0, max_bytes=100, max_interval_ms=1000)
    assert p.applied(60, 10) is None
    assert p.applied(40, 20) == "we have replayed at least 100 bytes"
    p.taken(20)
    assert p.applied(1, 1019) is None
    # the time rule fires only when a batch is applied (new records), after the interval
    assert p.applied(1, 1020) == "we have waited at least 0 minute(s)"
    p.taken(1020)
    assert p.bytes_since == 0
    never_by_time = SnapshotPolicy(now_ms=0, max_bytes=10**9, max_interval_ms=0)
    assert never_by_time.applied(5, 10**12) is None
    with pytest.raises(ValueError, match="between.snapshots"):
        SnapshotPolicy(0, max_bytes=0)
    with pytest.raises(ValueError, match="interval.ms"):
        SnapshotPolicy(0, max_interval_ms=-1)
    default = SnapshotPolicy(0)
    assert (default.max_bytes, default.max_interval_ms) == (20 * 1024 * 1024, 3_600_000)
    assert default.applied(1, 3_600_000) == "we have waited at least 60 minute(s)"


@pytest.mark.parametrize("seed", range(40))
def test_a_copy_of_an_image_equals_it_and_shares_nothing_that_changes(seed):
    """MetadataImage.copy (what the controller reverts to): every state field equal, and records
    applied to the original afterwards leave the copy as it was."""
    rng = random.Random(seed)
    history = RandomHistory(rng)
    for _ in range(rng.randrange(1, 80)):
        history.step()
    image = history.image
    copy = image.copy()
    assert image_state(copy) == image_state(image) and copy.listeners == []
    before = image_state(copy)
    for _ in range(60):
        history.step()
    assert image_state(copy) == before
