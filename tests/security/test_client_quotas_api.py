"""DescribeClientQuotas / AlterClientQuotas at the wire against an in-process broker: Kafka's
validation and messages, validate_only, defaults, filters, and the quotas surviving a restart
(metadata log replay)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

AReq = REQUESTS[49]
DReq = REQUESTS[48]


def entry(entity: dict, ops: dict) -> AReq.EntryData:
    return AReq.EntryData(
        entity=[AReq.EntryData.EntityData(entity_type=k, entity_name=v) for k, v in entity.items()],
        ops=[AReq.EntryData.OpData(key=k, value=0.0 if v is None else float(v), remove=v is None)
             for k, v in ops.items()])


def alter(w: Wire, *entries, validate_only: bool = False, version: int = 1):
    return w.call(49, version, entries=list(entries), validate_only=validate_only)


def describe(w: Wire, components=(), strict: bool = False, version: int = 1):
    return w.call(48, version, strict=strict, components=[
        DReq.ComponentData(entity_type=t, match_type=m, match=n) for t, m, n in components])


def as_dict(resp) -> dict:
    assert resp.error_code == ErrorCode.NONE, resp.error_message
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity): {v.key: v.value for v in entry.values}
            for entry in resp.entries}


@pytest.fixture()
def broker(tmp_path) -> Iterator[BrokerThread]:
    with BrokerThread({}, data_dir=str(tmp_path / "data")) as b:
        yield b


def test_alter_then_describe_with_filters_and_defaults(broker):
    w = Wire(broker.bootstrap_servers)
    resp = alter(w, entry({"client-id": "c1"}, {"producer_byte_rate": 1024}),
                 entry({"user": "alice"}, {"consumer_byte_rate": 2048, "request_percentage": 50.5}),
                 entry({"user": None}, {"producer_byte_rate": 100}),
                 entry({"user": "alice", "client-id": None}, {"controller_mutation_rate": 2}),
                 entry({"ip": "127.0.0.1"}, {"connection_creation_rate": 10}))
    assert [(e.error_code, e.error_message) for e in resp.entries] == [(0, None)] * 5
    everything = as_dict(describe(w))
    assert everything == {
        (("client-id", "c1"),): {"producer_byte_rate": 1024.0},
        (("user", "alice"),): {"consumer_byte_rate": 2048.0, "request_percentage": 50.5},
        (("user", None),): {"producer_byte_rate": 100.0},
        (("client-id", None), ("user", "alice")): {"controller_mutation_rate": 2.0},
        (("ip", "127.0.0.1"),): {"connection_creation_rate": 10.0},
    }
    # exact user: both entities naming alice; strict: only the user-only one
    assert set(as_dict(describe(w, [("user", 0, "alice")]))) == {(("user", "alice"),),
                                                                 (("client-id", None), ("user", "alice"))}
    assert set(as_dict(describe(w, [("user", 0, "alice")], strict=True))) == {(("user", "alice"),)}
    # default user; specified client-id (any entity with a client-id component)
    assert set(as_dict(describe(w, [("user", 1, None)]))) == {(("user", None),)}
    assert set(as_dict(describe(w, [("client-id", 2, None)]))) == {(("client-id", "c1"),),
                                                                   (("client-id", None), ("user", "alice"))}
    assert as_dict(describe(w, strict=True)) == {}
    # v0 (not flexible) answers the same
    assert set(as_dict(describe(w, [("ip", 2, None)], version=0))) == {(("ip", "127.0.0.1"),)}
    # removing a key, and an entity's last key
    resp = alter(w, entry({"user": "alice"}, {"consumer_byte_rate": None}), entry({"ip": "127.0.0.1"},
                                                                                   {"connection_creation_rate": None}))
    assert [e.error_code for e in resp.entries] == [0, 0]
    after = as_dict(describe(w))
    assert after[(("user", "alice"),)] == {"request_percentage": 50.5}
    assert (("ip", "127.0.0.1"),) not in after
    w.close()


def test_validate_only_changes_nothing(broker):
    w = Wire(broker.bootstrap_servers)
    resp = alter(w, entry({"client-id": "c1"}, {"producer_byte_rate": 1024}), validate_only=True)
    assert resp.entries[0].error_code == ErrorCode.NONE
    assert as_dict(describe(w)) == {}
    w.close()


@pytest.mark.parametrize(("entity", "ops", "message"), [
    ({"client-id": "c"}, {"unknown_key": 1}, "Invalid configuration key unknown_key"),
    ({"client-id": "c"}, {"connection_creation_rate": 1}, "Invalid configuration key connection_creation_rate"),
    ({"ip": "127.0.0.1"}, {"producer_byte_rate": 1}, "Invalid configuration key producer_byte_rate"),
    ({"group": "g"}, {"producer_byte_rate": 1}, "Unhandled client quota entity type: group"),
    ({}, {"producer_byte_rate": 1}, "Invalid empty client quota entity"),
    ({"user": ""}, {"producer_byte_rate": 1}, "Empty user not supported"),
    ({"user": "u", "ip": "127.0.0.1"}, {"producer_byte_rate": 1},
     "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"),
    ({"ip": "no.such.host.invalid"}, {"connection_creation_rate": 1}, "no.such.host.invalid is not a valid IP or resolvable host."),
    ({"user": "u"}, {"producer_byte_rate": 0}, "Quota producer_byte_rate must be greater than 0"),
    ({"user": "u"}, {"producer_byte_rate": 1.5}, "producer_byte_rate cannot be a fractional value."),
    ({"ip": "127.0.0.1"}, {"connection_creation_rate": 2**31}, "Proposed value for connection_creation_rate is too large for an INT."),
])
def test_invalid_entries_answer_invalid_request(broker, entity, ops, message):
    w = Wire(broker.bootstrap_servers)
    ok = entry({"client-id": "fine"}, {"producer_byte_rate": 5})
    resp = alter(w, entry(entity, ops), ok)
    assert [(e.error_code, e.error_message) for e in resp.entries] == [
        (ErrorCode.INVALID_REQUEST, message), (ErrorCode.NONE, None)]
    # the valid entry of the same request is applied, the invalid one not
    assert as_dict(describe(w)) == {(("client-id", "fine"),): {"producer_byte_rate": 5.0}}
    w.close()


def test_duplicate_keys_and_entities(broker):
    w = Wire(broker.bootstrap_servers)
    dup_key = AReq.EntryData(entity=[AReq.EntryData.EntityData(entity_type="user", entity_name="u")], ops=[
        AReq.EntryData.OpData(key="producer_byte_rate", value=1.0, remove=False),
        AReq.EntryData.OpData(key="producer_byte_rate", value=2.0, remove=False)])
    resp = alter(w, dup_key, entry({"client-id": "c", "user": "v"}, {"producer_byte_rate": 3}),
                 entry({"user": "v", "client-id": "c"}, {"producer_byte_rate": 4}))
    # Kafka: the duplicate key's error is replaced by "Ignoring duplicate entity"; a second entry for an
    # entity already altered is ignored (the first one's change stands)
    assert [(e.error_code, e.error_message) for e in resp.entries] == [
        (ErrorCode.INVALID_REQUEST, "Ignoring duplicate entity ClientQuotaEntity(entries={user=u})"),
        (ErrorCode.INVALID_REQUEST, "Ignoring duplicate entity ClientQuotaEntity(entries={client-id=c, user=v})"),
    ]
    assert as_dict(describe(w)) == {(("client-id", "c"), ("user", "v")): {"producer_byte_rate": 3.0}}
    w.close()


@pytest.mark.parametrize(("components", "code", "message"), [
    ([("user", 0, None)], ErrorCode.INVALID_REQUEST, "Request specified MATCH_TYPE_EXACT, but set match string to null."),
    ([("user", 1, "x")], ErrorCode.INVALID_REQUEST,
     "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."),
    ([("user", 2, "x")], ErrorCode.INVALID_REQUEST,
     "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."),
    ([("user", 7, None)], ErrorCode.INVALID_REQUEST, "Unknown match type 7"),
    ([("", 2, None)], ErrorCode.INVALID_REQUEST, "Invalid empty entity type."),
    ([("user", 2, None), ("user", 1, None)], ErrorCode.INVALID_REQUEST,
     "Entity type user cannot appear more than once in the filter."),
    ([("group", 2, None)], ErrorCode.UNSUPPORTED_VERSION, "Unsupported entity type group"),
    ([("ip", 2, None), ("user", 2, None)], ErrorCode.INVALID_REQUEST,
     "Invalid entity filter component combination. IP filter component should not be used with user or "
     "clientId filter component."),
])
def test_bad_describe_filters(broker, components, code, message):
    w = Wire(broker.bootstrap_servers)
    resp = describe(w, components)
    assert (resp.error_code, resp.error_message, resp.entries) == (code, message, None)
    w.close()


def test_quotas_survive_a_restart_and_reach_the_quota_managers(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread({}, data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        alter(w, entry({"user": None, "client-id": "c1"}, {"producer_byte_rate": 1000}),
              entry({"client-id": None}, {"consumer_byte_rate": 500}))
        w.close()
        assert b.broker.client_quotas.produce.quota("bob", "c1") == 1000.0
    with BrokerThread({}, data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        assert as_dict(describe(w)) == {(("client-id", "c1"), ("user", None)): {"producer_byte_rate": 1000.0},
                                        (("client-id", None),): {"consumer_byte_rate": 500.0}}
        w.close()
        quotas = b.broker.client_quotas
        assert quotas.produce.quota("bob", "c1") == 1000.0
        assert quotas.produce.quota("bob", "c2") is None
        assert quotas.fetch.quota("anyone", "any") == 500.0
        assert quotas.active


def test_authorization_needs_describe_configs_and_alter_configs_on_the_cluster(tmp_path):
    from kbroker.security.acls import STANDARD_AUTHORIZER

    # PLAINTEXT: User:ANONYMOUS, with no ACL and not a super user
    with BrokerThread({"authorizer.class.name": STANDARD_AUTHORIZER}, data_dir=str(tmp_path / "data")) as b:
        w = Wire(b.bootstrap_servers)
        resp = describe(w)
        assert (resp.error_code, resp.error_message, resp.entries) == (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None,
                                                                      None)
        resp = alter(w, entry({"user": "u"}, {"producer_byte_rate": 1}), entry({"client-id": None},
                                                                                {"consumer_byte_rate": 2}))
        assert [(e.error_code, e.error_message, [(x.entity_type, x.entity_name) for x in e.entity])
                for e in resp.entries] == [
            (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.", [("user", "u")]),
            (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.", [("client-id", None)])]
        assert b.broker.image.client_quotas == {}
        w.close()
