"""What Kafka 4.4 added to the protocol, against a real broker over TCP: ApiVersions v5 (KIP-1242),
unstable versions behind ``unstable.api.versions.enable``, the feature levels in ApiVersions and
UpdateFeatures v0-2 (with ``kafka-features.sh``), ListConfigResources v0-1, TxnOffsetCommit v6 (topic
ids, KIP-1319), DeleteGroups v3, and the Java 4.4 client's transactional consume-process-produce.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid

from java_harness import ensure_java_harness
from waiting import wait_until
from wire import Wire, create_topic

from kbroker.api import load_handlers
from kbroker.api.registry import HANDLERS
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode as E
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.data.voters_record import VotersRecord
from kbroker_protocol.record_batch import iter_batch_headers
from kbroker_protocol.records import Record, build_batch, iter_records, parse_control_record

ZERO = uuid.UUID(int=0)

# Kafka 4.4.0's features: BrokerFeatures.defaultSupportedFeatures(false) and what
# `kafka-storage.sh format` finalizes (observed with scripts/compare_api_versions.py).
KAFKA_44_SUPPORTED = {
    "metadata.version": (7, 33), "kraft.version": (0, 1), "transaction.version": (0, 2), "group.version": (0, 1),
    "eligible.leader.replicas.version": (0, 1), "share.version": (0, 2), "streams.version": (0, 1),
}
KAFKA_44_FINALIZED = {
    "metadata.version": 33, "transaction.version": 2, "group.version": 1, "eligible.leader.replicas.version": 1,
    "share.version": 2, "streams.version": 1,
}
FAILED_ALL = "The update failed for all features since the following feature had an error: "


def _api_versions(w: Wire, version: int, **fields):
    return w.call(18, version, client_software_name="kbroker-test", client_software_version="1.0", **fields)


def _ranges(resp) -> dict[int, tuple[int, int]]:
    return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}


# -- ApiVersions v5 (KIP-1242) ---------------------------------------------------------------------

def test_api_versions_v5_checks_cluster_and_node_id(broker, wire):
    b = broker.broker
    ok = _api_versions(wire, 5, cluster_id=b.cluster_id, node_id=b.node_id)
    assert ok.error_code == E.NONE and _ranges(ok)[18] == (0, 5)
    assert _api_versions(wire, 5, cluster_id=None, node_id=-1).error_code == E.NONE  # nothing to check
    # Another cluster, or this cluster but another node: the client's metadata is stale.
    for cluster_id, node_id in ((b.cluster_id + "x", b.node_id), (b.cluster_id, b.node_id + 1)):
        resp = _api_versions(wire, 5, cluster_id=cluster_id, node_id=node_id)
        assert (resp.error_code, resp.api_keys) == (E.REBOOTSTRAP_REQUIRED, [])
    # Only one of the two: an invalid request (checked before the match, as Kafka).
    for cluster_id, node_id in ((b.cluster_id, -1), (None, b.node_id), ("other", -1)):
        resp = _api_versions(wire, 5, cluster_id=cluster_id, node_id=node_id)
        assert (resp.error_code, resp.api_keys) == (E.INVALID_REQUEST, [])
    # The connection still serves after the errors.
    assert _api_versions(wire, 4).error_code == E.NONE


# -- unstable versions -----------------------------------------------------------------------------

def _init_producer_id_v6_answered(bootstrap: str) -> bool:
    w = Wire(bootstrap)
    try:
        resp = w.call(22, 6, transactional_id=None, transaction_timeout_ms=60000)
        return resp.error_code == E.NONE and resp.producer_id >= 0
    except ConnectionError:
        return False
    finally:
        w.close()


def test_unstable_newest_version_only_when_enabled(bootstrap, wire):
    # InitProducerId v6 is latestVersionUnstable in the 4.4 spec: Kafka advertises v0-5.
    assert _ranges(_api_versions(wire, 4))[22] == (0, 5)
    assert not _init_producer_id_v6_answered(bootstrap)  # closed, like a version not served
    assert wire.call(22, 5, transactional_id=None, transaction_timeout_ms=60000).error_code == E.NONE
    with BrokerThread(config={"unstable.api.versions.enable": "true"}) as unstable:
        w = Wire(unstable.bootstrap_servers)
        try:
            assert _ranges(_api_versions(w, 4))[22] == (0, 6)
        finally:
            w.close()
        assert _init_producer_id_v6_answered(unstable.bootstrap_servers)


# -- features --------------------------------------------------------------------------------------

def _features(w: Wire, version: int = 4):
    resp = _api_versions(w, version)
    return ({f.name: (f.min_version, f.max_version) for f in resp.supported_features},
            {f.name: (f.min_version_level, f.max_version_level) for f in resp.finalized_features},
            resp.finalized_features_epoch)


def test_api_versions_features_as_kafka_44(broker, wire):
    supported, finalized, epoch = _features(wire, 4)
    assert supported == KAFKA_44_SUPPORTED
    assert finalized == {name: (level, level) for name, level in KAFKA_44_FINALIZED.items()}
    assert epoch == broker.broker.image.offset >= 0
    # Below v4 a supported feature with minimum 0 is left out (KAFKA-17492), as Kafka does.
    supported_v3, finalized_v3, _ = _features(wire, 3)
    assert supported_v3 == {"metadata.version": (7, 33)}
    assert finalized_v3 == finalized


def _update(w: Wire, version: int, *updates, validate_only: bool = False):
    Key = REQUESTS[57].FeatureUpdateKey
    keys = [Key(feature=name, max_version_level=level, upgrade_type=kind) for name, level, kind in updates]
    return w.call(57, version, timeout_ms=60000, feature_updates=keys, validate_only=validate_only)


def _refused(resp, message: str) -> None:
    assert (resp.error_code, resp.error_message, resp.results) == (E.INVALID_UPDATE_VERSION, FAILED_ALL + message, [])


def test_update_features_kept_in_the_metadata_log(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        _, finalized, epoch = _features(w)
        # A downgrade needs a downgrade type; nothing changes when it is refused.
        _refused(_update(w, 1, ("group.version", 0, 1)),
                 "Invalid update version 0 for feature group.version. Can't downgrade the version of this feature "
                 "without setting the upgrade type to either safe or unsafe downgrade.")
        # ValidateOnly checks without writing; v0-1 list each feature with NONE.
        resp = _update(w, 1, ("group.version", 0, 2), validate_only=True)
        assert (resp.error_code, [(r.feature, r.error_code, r.error_message) for r in resp.results]) == (
            E.NONE, [("group.version", E.NONE, "NONE")])
        assert _features(w)[1:] == (finalized, epoch)
        # A safe downgrade at v2 (no per-feature results): group.version is no longer finalized.
        resp = _update(w, 2, ("group.version", 0, 2))
        assert (resp.error_code, resp.error_message, resp.results) == (E.NONE, None, [])
        _, after, new_epoch = _features(w)
        assert "group.version" not in after and new_epoch > epoch
        # Without group.version 1 the consumer group protocol (KIP-848) is off, as in Kafka.
        assert _heartbeat(w).error_code == E.UNSUPPORTED_VERSION
        w.close()
    with BrokerThread(data_dir=data) as b:  # replayed from __cluster_metadata
        w = Wire(b.bootstrap_servers)
        assert "group.version" not in _features(w)[1]
        resp = _update(w, 0, ("group.version", 1, 1))
        assert [(r.feature, r.error_code) for r in resp.results] == [("group.version", E.NONE)]
        assert _features(w)[1]["group.version"] == (1, 1)
        assert _ready(lambda: _heartbeat(w), "ConsumerGroupHeartbeat").error_code == E.NONE
        # kraft.version 1 is written as Kafka's Raft layer writes it (KRaftVersionRecord and
        # VotersRecord control records), not as a FeatureLevelRecord.
        assert _update(w, 2, ("kraft.version", 1, 1)).error_code == E.NONE
        assert _features(w)[1]["kraft.version"] == (1, 1)
        _refused(_update(w, 2, ("kraft.version", 0, 2)),
                 "Invalid update version 0 for feature kraft.version. Can't downgrade the version of this feature.")
        w.close()
        # (the LeaderChangeMessage records, type 2, that each Raft epoch starts with aside)
        control = [(t, v) for t, v in _control_records(b.broker.controller.log) if t != 2]
        assert [t for t, _ in control] == [5, 6]
        [voter] = VotersRecord.decode(control[1][1], 0).voters
        assert (voter.voter_id, voter.endpoints[0].port) == (b.broker.node_id, int(b.bootstrap_servers.rsplit(":")[1]))
        assert (voter.kraft_version_feature.min_supported_version, voter.kraft_version_feature.max_supported_version) == (0, 1)
    with BrokerThread(data_dir=data) as b:  # the control records are replayed too
        w = Wire(b.bootstrap_servers)
        assert _features(w)[1]["kraft.version"] == (1, 1)
        w.close()


def _control_records(partition_log) -> list[tuple[int, bytes]]:
    """(control type, value) of every record in the metadata log's control batches."""
    out = []
    result = partition_log.read(partition_log.log_start_offset, 64 * 1024 * 1024)
    data = b"".join(s.read() for s in result.slices)
    for pos, header in iter_batch_headers(data):
        if header.is_control:
            for record in iter_records(memoryview(data)[pos:pos + header.size]):
                out.append((parse_control_record(record).type, bytes(record.value)))
    return out


def _heartbeat(w: Wire):
    return w.call(68, 1, group_id=f"g-{uuid.uuid4().hex[:8]}", member_id=uuid.uuid4().hex[:22], member_epoch=0,
                  rebalance_timeout_ms=30000, subscribed_topic_names=["t"], topic_partitions=[])


def test_update_features_refusals_as_kafka(broker, wire):
    _, before, epoch = _features(wire)
    mv = "Unsupported metadata.version downgrade from 33 to 32. "
    # A downgrade across a level that changed metadata records could lose metadata: refused, and
    # Kafka 4.4 refuses it even when an unsafe downgrade is asked.
    _refused(_update(wire, 1, ("metadata.version", 32, 2)),
             mv + "Refusing to perform the requested downgrade because it might delete metadata information.")
    _refused(_update(wire, 1, ("metadata.version", 32, 3)), mv + "Unsafe metadata downgrade is not supported in this "
                                                                 "version.")
    cases = [
        (("metadata.version", 34, 1), "Local controller 1 only supports versions 7-33"),
        (("no.such.version", 1, 1), "Local controller 1 does not support this feature."),
        (("transaction.version", 3, 1), "Local controller 1 only supports versions 0-2"),
        (("transaction.version", -1, 2), "A feature version cannot be less than 0."),
        (("group.version", 1, 0), "The controller does not support the given upgrade type."),
        (("group.version", 1, 4), "The controller does not support the given upgrade type."),
        (("share.version", 2, 2), None),  # the current level: allowed, and a no-op below
    ]
    for (name, level, kind), message in cases:
        resp = _update(wire, 2, (name, level, kind))
        if message is None:
            assert resp.error_code == E.NONE
        else:
            _refused(resp, f"Invalid update version {level} for feature {name}. {message}")
    # All or nothing: the valid first update is not applied when the second fails.
    _refused(_update(wire, 2, ("group.version", 0, 2), ("transaction.version", 3, 1)),
             "Invalid update version 3 for feature transaction.version. Local controller 1 only supports versions 0-2")
    assert _features(wire)[1] == before
    # kraft.version: an upgrade validates (the quorum can go from static to dynamic voters), as in Kafka.
    assert _update(wire, 2, ("kraft.version", 1, 1), validate_only=True).error_code == E.NONE
    assert _features(wire)[1] == before


def _kafka_tool(main_class: str, *args: str) -> subprocess.CompletedProcess:
    from reference_kafka import run_tool
    return run_tool(main_class, list(args))


def test_kafka_features_sh_describe_downgrade_upgrade(tmp_path):
    """Kafka 4.4's own kafka-features.sh (org.apache.kafka.tools.FeatureCommand) against kbroker."""
    with BrokerThread(data_dir=str(tmp_path / "data")) as b:
        bs = b.bootstrap_servers
        w = Wire(bs)
        described = _kafka_tool("org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", bs, "describe")
        assert described.returncode == 0, described.stderr
        rows = {}  # "Feature: NAME  SupportedMinVersion: A  SupportedMaxVersion: B  FinalizedVersionLevel: C ..."
        for line in described.stdout.splitlines():
            words = line.split()
            if words[:1] == ["Feature:"]:
                rows[words[1]] = dict(zip(words[2::2], words[3::2], strict=False))
        assert set(rows) == set(KAFKA_44_SUPPORTED), described.stdout
        assert rows["metadata.version"]["SupportedMinVersion:"] == "3.3-IV3"
        assert rows["metadata.version"]["SupportedMaxVersion:"] == "4.4-IV2"
        assert rows["metadata.version"]["FinalizedVersionLevel:"] == "4.4-IV2"
        for name, (lo, hi) in KAFKA_44_SUPPORTED.items():
            if name != "metadata.version":
                assert (rows[name]["SupportedMinVersion:"], rows[name]["SupportedMaxVersion:"]) == (str(lo), str(hi))
                assert rows[name]["FinalizedVersionLevel:"] == str(KAFKA_44_FINALIZED.get(name, 0)), name
        down = _kafka_tool("org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", bs, "downgrade",
                           "--feature", "group.version=0")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "group.version" not in _features(w)[1]
        # The data-losing metadata.version downgrade is refused, and the tool says so.
        refused = _kafka_tool("org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", bs, "downgrade",
                              "--metadata", "4.4-IV1", "--unsafe")
        assert refused.returncode != 0
        assert "Unsafe metadata downgrade is not supported" in refused.stdout + refused.stderr
        # Every feature to 4.4's levels at once: group.version back to 1, kraft.version to 1.
        up = _kafka_tool("org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", bs, "upgrade",
                         "--release-version", "4.4-IV2")
        assert up.returncode == 0, up.stdout + up.stderr
        assert _features(w)[1] == {name: (level, level)
                                   for name, level in {**KAFKA_44_FINALIZED, "kraft.version": 1}.items()}
        w.close()


# -- ListConfigResources ---------------------------------------------------------------------------

def test_list_config_resources(broker, wire):
    name = f"lcr-{uuid.uuid4().hex[:8]}"
    create_topic(wire, name)
    node = str(broker.broker.node_id)
    topics = sorted(broker.broker.image.topics)
    assert name in topics
    resp = wire.call(74, 1, resource_types=[])
    assert resp.error_code == E.NONE
    assert [(r.resource_type, r.resource_name) for r in resp.config_resources] == (
        [(8, node), (4, node)] + [(2, t) for t in topics])
    resp = wire.call(74, 1, resource_types=[2])
    assert {r.resource_name for r in resp.config_resources} == set(topics)
    assert {r.resource_type for r in resp.config_resources} == {2}
    # No client metrics (kbroker has none) and no group configs set on this broker: nothing listed.
    assert wire.call(74, 1, resource_types=[16, 32]).config_resources == []
    assert (wire.call(74, 0).error_code, wire.call(74, 0).config_resources) == (E.NONE, [])
    # A type the version does not know: UNSUPPORTED_VERSION and no resources, as Kafka.
    for types in ([64], [2, 1]):
        resp = wire.call(74, 1, resource_types=types)
        assert (resp.error_code, resp.config_resources) == (E.UNSUPPORTED_VERSION, [])


# -- TxnOffsetCommit v6 (topic ids) ----------------------------------------------------------------

NOT_READY = (E.COORDINATOR_NOT_AVAILABLE, E.COORDINATOR_LOAD_IN_PROGRESS, E.NOT_COORDINATOR)


def _ready(call, what: str, code=lambda r: r.error_code):
    """Call until the coordinators' internal topics exist (COORDINATOR_NOT_AVAILABLE meanwhile)."""
    def attempt():
        response = call()
        return None if code(response) in NOT_READY else response
    return wait_until(attempt, timeout=30, message=what)


def _first_code(resp) -> int:
    return resp.topics[0].partitions[0].error_code


def _txn_offset_commit(w: Wire, version: int, tid, pid, epoch, group, topics, generation=-1, member=""):
    Req = REQUESTS[28]
    return w.call(Req(transactional_id=tid, group_id=group, producer_id=pid, producer_epoch=epoch,
                      generation_id_or_member_epoch=generation, member_id=member, group_instance_id=None, topics=[
                          Req.TxnOffsetCommitRequestTopic(name=name, topic_id=topic_id, partitions=[
                              Req.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                                  partition_index=p, committed_offset=off, committed_metadata="m")
                              for p, off in parts])
                          for name, topic_id, parts in topics]), version)


def _codes(resp, version):
    return [((t.topic_id if version >= 6 else t.name), [(p.partition_index, p.error_code) for p in t.partitions])
            for t in resp.topics]


def _committed(w: Wire, group: str, topic: str) -> int:
    Req = REQUESTS[9]
    resp = w.call(Req(group_id=group, topics=[Req.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])],
                      require_stable=True), 7)
    return resp.topics[0].partitions[0].committed_offset


def _begin(w: Wire, topic: str):
    tid = f"tx-{uuid.uuid4().hex[:8]}"
    init = _ready(lambda: w.call(22, 5, transactional_id=tid, transaction_timeout_ms=60000), "InitProducerId")
    assert init.error_code == E.NONE
    pid, epoch = init.producer_id, init.producer_epoch
    batch = build_batch([Record(value=b"v", timestamp=1_700_000_000_000)], producer_id=pid, producer_epoch=epoch,
                        base_sequence=0, transactional=True)
    Req = REQUESTS[0]
    resp = w.call(Req(transactional_id=tid, acks=-1, timeout_ms=10000, topic_data=[Req.TopicProduceData(
        name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(index=0, records=batch)])]), 12)
    assert resp.responses[0].partition_responses[0].error_code == E.NONE
    return tid, pid, epoch


def test_txn_offset_commit_v6_by_topic_id(broker, wire):
    topic = f"in-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic, partitions=2)
    topic_id = broker.broker.image.topic(topic).topic_id
    group = f"g-{uuid.uuid4().hex[:8]}"
    tid, pid, epoch = _begin(wire, topic)
    unknown = uuid.uuid4()
    resp = _ready(lambda: _txn_offset_commit(wire, 6, tid, pid, epoch, group, [
        ("", topic_id, [(0, 5), (7, 1)]), ("", unknown, [(0, 1)]), ("", ZERO, [(1, 1)])]), "TxnOffsetCommit", _first_code)
    # The known topic's partition is committed; a partition it does not have, an id this cluster
    # does not know and the zero id are refused without touching the others.
    assert _codes(resp, 6) == [(topic_id, [(0, E.NONE), (7, E.UNKNOWN_TOPIC_OR_PARTITION)]),
                               (unknown, [(0, E.UNKNOWN_TOPIC_ID)]), (ZERO, [(1, E.UNKNOWN_TOPIC_ID)])]
    assert wire.call(26, 5, transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                     committed=True).error_code == E.NONE
    wait_until(lambda: _committed(wire, group, topic) == 5, message="offset 5 committed with the transaction")


def test_txn_offset_commit_bad_input(broker, wire):
    topic = f"in-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    topic_id = broker.broker.image.topic(topic).topic_id
    group = f"g-{uuid.uuid4().hex[:8]}"
    tid, pid, epoch = _begin(wire, topic)
    # Only unknown topics: answered from the topic check alone, before any coordinator.
    resp = _txn_offset_commit(wire, 6, "no-such-txn", 1, 0, group, [("", uuid.uuid4(), [(0, 1)])])
    assert [c for _, c in _codes(resp, 6)] == [[(0, E.UNKNOWN_TOPIC_ID)]]
    resp = _txn_offset_commit(wire, 5, "no-such-txn", 1, 0, group, [("no-such-topic", ZERO, [(0, 1)])])
    assert _codes(resp, 5) == [("no-such-topic", [(0, E.UNKNOWN_TOPIC_OR_PARTITION)])]
    # A generation for a group that does not exist: GROUP_ID_NOT_FOUND from v6, ILLEGAL_GENERATION before.
    for version, code in ((6, E.GROUP_ID_NOT_FOUND), (5, E.ILLEGAL_GENERATION)):
        resp = _ready(lambda v=version: _txn_offset_commit(wire, v, tid, pid, epoch, group, [
            (topic, topic_id, [(0, 3)])], generation=4, member="m-1"), "TxnOffsetCommit", _first_code)
        assert [c for _, c in _codes(resp, version)] == [[(0, code)]], version
    # The transaction is still checked at v6: another producer id does not own it.
    resp = _txn_offset_commit(wire, 6, tid, pid + 1000, epoch, group, [("", topic_id, [(0, 3)])])
    assert [c for _, c in _codes(resp, 6)] == [[(0, E.INVALID_PRODUCER_ID_MAPPING)]]
    assert wire.call(26, 5, transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                     committed=False).error_code == E.NONE


def test_txn_offset_commit_stale_member_epoch(broker, wire):
    """A KIP-848 member committing with an older epoch: STALE_MEMBER_EPOCH from v6, and the legacy
    ILLEGAL_GENERATION before (Kafka's OffsetMetadataManager.validateTransactionalOffsetCommit)."""
    topic = f"in-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    topic_id = broker.broker.image.topic(topic).topic_id
    group, member = f"g-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:22]
    joined = _ready(lambda: wire.call(68, 1, group_id=group, member_id=member, member_epoch=0,
                                      rebalance_timeout_ms=30000, subscribed_topic_names=[topic],
                                      topic_partitions=[]), "ConsumerGroupHeartbeat")
    assert joined.error_code == E.NONE and joined.member_epoch >= 1
    epoch_now = joined.member_epoch
    tid, pid, epoch = _begin(wire, topic)
    for version, code in ((6, E.STALE_MEMBER_EPOCH), (5, E.ILLEGAL_GENERATION)):
        resp = _ready(lambda v=version: _txn_offset_commit(wire, v, tid, pid, epoch, group, [
            (topic, topic_id, [(0, 3)])], generation=epoch_now - 1, member=member), "TxnOffsetCommit", _first_code)
        assert _first_code(resp) == code, version
    resp = _txn_offset_commit(wire, 6, tid, pid, epoch, group, [("", topic_id, [(0, 3)])], generation=epoch_now,
                              member=member)
    assert _first_code(resp) == E.NONE
    assert wire.call(26, 5, transactional_id=tid, producer_id=pid, producer_epoch=epoch,
                     committed=False).error_code == E.NONE


# -- DeleteGroups v3 -------------------------------------------------------------------------------

def test_delete_groups_v3(broker, wire):
    topic = f"dg-{uuid.uuid4().hex[:8]}"
    create_topic(wire, topic)
    group = f"g-{uuid.uuid4().hex[:8]}"
    Req = REQUESTS[8]
    commit = Req(group_id=group, generation_id_or_member_epoch=-1, member_id="", group_instance_id=None, topics=[
        Req.OffsetCommitRequestTopic(name=topic, partitions=[
            Req.OffsetCommitRequestTopic.OffsetCommitRequestPartition(partition_index=0, committed_offset=1)])])
    wait_until(lambda: wire.call(commit, 9).topics[0].partitions[0].error_code == E.NONE, message="OffsetCommit")
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    resp = wire.call(42, 3, groups_names=[group, missing, group, ""])
    # One result per distinct name (as Kafka's KafkaApis); Kafka 4.4 sets ErrorMessage only for
    # GROUP_DELETION_FAILED, so the usual errors carry none.
    assert [(r.group_id, r.error_code, r.error_message) for r in resp.results] == [
        (group, E.NONE, None), (missing, E.GROUP_ID_NOT_FOUND, None), ("", E.INVALID_GROUP_ID, None)]
    assert _committed(wire, group, topic) == -1
    assert [r.error_code for r in wire.call(42, 3, groups_names=[group]).results] == [E.GROUP_ID_NOT_FOUND]


# -- the Java 4.4 client ---------------------------------------------------------------------------

def _run_java_scenario(monkeypatch, clients: str):
    """Run the harness's consume_process_produce on kafka-clients ``clients`` against a fresh broker;
    return the result line, the (api key, version, request) of every ApiVersions and TxnOffsetCommit
    the broker handled, and the broker's topic names by id."""
    load_handlers()
    seen: list[tuple[int, int, object]] = []
    for key in (18, 28):
        entry = HANDLERS[key]

        def recording(ctx, request, _handler=entry.handler, _key=key):
            seen.append((_key, ctx.api_version, request))
            return _handler(ctx, request)

        monkeypatch.setitem(HANDLERS, key, dataclasses.replace(entry, handler=recording))
    cmd = ensure_java_harness(clients)
    with BrokerThread(config={"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3",
                              "transaction.state.log.num.partitions": "3"}) as b:
        run = subprocess.run([*cmd, b.bootstrap_servers, "consume_process_produce"], capture_output=True,
                             text=True, timeout=240)
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["ok"], result["error"] + run.stderr[-2000:]
        ids = {t.topic_id: name for name, t in b.broker.image.topics.items()}
    return result, seen, ids


def test_java_44_client_consume_process_produce(monkeypatch):
    """The Java 4.4 client reads, writes and commits its consumer offsets in one transaction
    (sendOffsetsToTransaction): it negotiates with ApiVersions v5 and, with Transactions V2,
    commits the offsets with TxnOffsetCommit v6, naming the topic by id."""
    result, seen, ids = _run_java_scenario(monkeypatch, "4")
    assert result["client_version"] == "4.4.0"
    api_versions = [(v, r) for k, v, r in seen if k == 18]
    assert api_versions and {v for v, _ in api_versions} == {5}
    assert all(r.client_software_name == "apache-kafka-java" for _, r in api_versions)
    commits = [(v, r) for k, v, r in seen if k == 28]
    assert [v for v, _ in commits] == [6]
    topic = commits[0][1].topics[0]
    assert ids[topic.topic_id].startswith("compat-java-4.x-consume-process-produce-")
    assert [(p.partition_index, p.committed_offset) for p in topic.partitions] == [(0, 10)]


def test_java_39_client_consume_process_produce(monkeypatch):
    """The same with kafka-clients 3.9 (no Transactions V2, no topic ids): AddOffsetsToTxn, then
    TxnOffsetCommit below v5 naming the topic."""
    result, seen, _ = _run_java_scenario(monkeypatch, "3.9")
    assert result["client_version"].startswith("3.9")
    assert {v for k, v, _ in seen if k == 18} == {4}
    commits = [(v, r) for k, v, r in seen if k == 28]
    assert len(commits) == 1 and commits[0][0] < 5
    topic = commits[0][1].topics[0]
    assert topic.name.startswith("compat-java-3.x-consume-process-produce-")
    assert [(p.partition_index, p.committed_offset) for p in topic.partitions] == [(0, 10)]
