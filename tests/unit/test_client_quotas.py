"""The quota arithmetic of kbroker/security/quotas.py with a fake clock, against the numbers of
Kafka's own tests (ClientQuotaManagerTest, ControllerMutationQuotaManagerTest) and its precedence
rules; and the image listener that feeds the managers from ClientQuotaRecords."""

from __future__ import annotations

import pytest

from kbroker.metadata import metadata_records as mr
from kbroker.metadata.image import MetadataImage
from kbroker.metadata.snapshot import image_to_records, records_to_image, snapshot_removals
from kbroker.security.quotas import (
    DEFAULT,
    ClientQuotaManager,
    ClientQuotas,
    IpConnectionQuotas,
    MutationQuota,
    Rate,
    ThrottlingQuotaExceeded,
    principal_user,
)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, ms: float) -> None:
        self.now += ms


def test_rate_throttle_matches_kafkas_quota_violation_test():
    """ClientQuotaManagerTest.testQuotaViolation: 500 B/s, 11 windows of 1 s."""
    clock = FakeClock()
    m = ClientQuotaManager("Produce", 11, 1, clock)
    m.update_quota(None, DEFAULT, 500)
    for _ in range(10):
        assert m.record("ANONYMOUS", "unknown", 400) == 0
        clock.sleep(1000)
    clock.sleep(500)
    # 400*10 + 2300 = 6300 bytes over 10.5 s = 600 B/s: (600 - 500) / 500 * 10.5 s
    assert m.record("ANONYMOUS", "unknown", 2300) == 2100
    clock.sleep(2100)
    for _ in range(10):
        m.record("ANONYMOUS", "unknown", 400)
        clock.sleep(1000)
    assert m.record("ANONYMOUS", "unknown", 0) == 0  # the burst's sample has rolled over


def test_rate_window_is_at_least_samples_minus_one_windows_and_old_samples_expire():
    clock = FakeClock()
    r = Rate(11, 1000)
    r.record(1000, clock())
    assert r.window_size(clock()) == 10_000  # a fresh rate counts 10 whole windows
    assert r.measure(clock()) == 100.0
    clock.sleep(25_000)  # more than 11 windows without a record: the sample is reset
    assert r.measure(clock()) == 0.0


def test_unrecord_and_max_value_in_window():
    clock = FakeClock()
    m = ClientQuotaManager("Fetch", 11, 1, clock)
    assert m.max_value_in_window("u", "c") == float("inf")  # no quota at all
    m.update_quota(None, "c", 100)
    assert m.max_value_in_window("u", "c") == 1000.0  # bound * (samples - 1) * window
    assert m.max_value_in_window("u", "other") == float("inf")
    assert m.record("u", "c", 5000) > 0
    m.unrecord("u", "c", 5000)
    assert m.record("u", "c", 0) == 0


def test_nothing_recorded_while_no_quota_is_set():
    m = ClientQuotaManager("Produce", clock=FakeClock())
    assert not m.enabled
    assert m.record("u", "c", 10**12) == 0
    assert m.sensors == {}
    m.update_quota("u", None, 10)
    assert m.enabled
    m.update_quota("u", None, None)
    assert not m.enabled


@pytest.mark.parametrize(("entities", "expected"), [
    # Kafka's order: user+client, user+<default> client, user, <default> user+client,
    # <default> user+<default> client, <default> user, client, <default> client
    ([(("alice", "c1"), 1), (("alice", DEFAULT), 2), (("alice", None), 3), ((DEFAULT, "c1"), 4),
      ((DEFAULT, DEFAULT), 5), ((DEFAULT, None), 6), ((None, "c1"), 7), ((None, DEFAULT), 8)], 1),
    ([(("alice", DEFAULT), 2), (("alice", None), 3), ((DEFAULT, "c1"), 4), ((DEFAULT, DEFAULT), 5),
      ((DEFAULT, None), 6), ((None, "c1"), 7), ((None, DEFAULT), 8)], 2),
    ([(("alice", None), 3), ((DEFAULT, "c1"), 4), ((DEFAULT, DEFAULT), 5), ((DEFAULT, None), 6),
      ((None, "c1"), 7), ((None, DEFAULT), 8)], 3),
    ([((DEFAULT, "c1"), 4), ((DEFAULT, DEFAULT), 5), ((DEFAULT, None), 6), ((None, "c1"), 7),
      ((None, DEFAULT), 8)], 4),
    ([((DEFAULT, DEFAULT), 5), ((DEFAULT, None), 6), ((None, "c1"), 7), ((None, DEFAULT), 8)], 5),
    ([((DEFAULT, None), 6), ((None, "c1"), 7), ((None, DEFAULT), 8)], 6),
    ([((None, "c1"), 7), ((None, DEFAULT), 8)], 7),
    ([((None, DEFAULT), 8)], 8),
    ([(("bob", None), 9), ((None, "c2"), 10)], None),  # quotas of others only
])
def test_precedence(entities, expected):
    m = ClientQuotaManager("Produce", clock=FakeClock())
    for (user, client), value in entities:
        m.update_quota(user, client, value)
    assert m.quota("alice", "c1") == expected


def test_usage_is_shared_by_the_clients_of_one_quota_entity():
    clock = FakeClock()
    # a client-id quota: every user of that client id fills the same sensor
    m = ClientQuotaManager("Produce", 11, 1, clock)
    m.update_quota(None, "shared", 100)
    assert m.record("alice", "shared", 900) == 0
    assert m.record("bob", "shared", 200) == 1000  # 1100 B over 10 s = 110 B/s
    assert set(m.sensors) == {("", "shared")}
    # a user quota: every client id of that user fills the same sensor
    u = ClientQuotaManager("Produce", 11, 1, clock)
    u.update_quota("alice", None, 100)
    assert u.record("alice", "a", 900) == 0
    assert u.record("alice", "b", 200) == 1000
    assert u.record("bob", "b", 10**9) == 0  # no quota for bob
    assert set(u.sensors) == {("alice", ""), ("bob", "")}


def test_a_changed_quota_applies_to_existing_sensors():
    clock = FakeClock()
    m = ClientQuotaManager("Produce", 11, 1, clock)
    m.update_quota(None, "c", 1000)
    assert m.record("u", "c", 5000) == 0
    m.update_quota(None, "c", 100)
    assert m.record("u", "c", 0) == 40_000  # 500 B/s against 100: (500-100)/100 * 10 s


def test_request_quota_throttle_is_bounded_by_one_window():
    clock = FakeClock()
    quotas = ClientQuotas(clock=clock)
    quotas.request.update_quota("u", None, 1.0)  # 1 % of a thread
    assert quotas.request.record("u", "c", 50.0) == 1000  # 0.5 s of handler time: capped at one window


def test_strict_and_permissive_mutation_quotas_match_kafkas_tests():
    clock = FakeClock()
    m = ClientQuotaManager("ControllerMutation", 10, 1, clock, token_bucket=True)
    m.update_quota("u", "c", 10)
    strict = m.mutation_quota("u", "c", strict=True)
    strict.record(90)  # 100 tokens -> 10
    strict.record(90)  # accepted: -80
    assert strict.throttle_time() == 0
    with pytest.raises(ThrottlingQuotaExceeded) as info:
        strict.record(90)
    assert info.value.throttle_ms == 8000
    assert strict.throttle_time() == 8000
    clock.sleep(5000)
    assert strict.throttle_time() == 3000

    p = ClientQuotaManager("ControllerMutation", 10, 1, clock, token_bucket=True)
    p.update_quota("u", "c", 10)
    permissive = p.mutation_quota("u", "c", strict=False)
    permissive.record(90)
    assert permissive.throttle_time() == 0
    permissive.record(90)
    assert permissive.throttle_time() == 8000
    permissive.record(90)
    assert permissive.throttle_time() == 17000
    clock.sleep(5000)
    assert permissive.throttle_time() == 12000


def test_mutation_quota_refills_over_time():
    clock = FakeClock()
    m = ClientQuotaManager("ControllerMutation", 10, 1, clock, token_bucket=True)
    m.update_quota("u", "c", 10)
    q = m.mutation_quota("u", "c", strict=True)
    q.record(110)  # 100 -> -10
    with pytest.raises(ThrottlingQuotaExceeded) as info:
        m.mutation_quota("u", "c", strict=True).record(1)
    assert info.value.throttle_ms == 1000
    clock.sleep(1000)
    m.mutation_quota("u", "c", strict=True).record(110)  # back at 0 tokens: accepted
    unlimited = ClientQuotaManager("ControllerMutation", clock=clock, token_bucket=True).mutation_quota("u", "c", True)
    assert isinstance(unlimited, MutationQuota)
    for _ in range(100):
        unlimited.record(10**6)


def test_ip_connection_rate():
    clock = FakeClock()
    ip = IpConnectionQuotas(11, 1, clock)
    assert ip.record("10.0.0.1") == 0 and not ip.enabled
    ip.update("10.0.0.1", 2)
    for _ in range(20):  # 20 connections over 10 s = 2/s: accepted
        assert ip.record("10.0.0.1") == 0
    throttle = ip.record("10.0.0.1")
    assert 0 < throttle <= 1000  # over the rate: held at most one window, then closed
    assert ip.record("10.0.0.2") == 0  # no default: other addresses are free
    ip.update(None, 1)
    for _ in range(10):
        assert ip.record("10.0.0.2") == 0
    assert ip.record("10.0.0.2") > 0
    ip.update("10.0.0.1", None)
    ip.update(None, None)
    assert not ip.enabled


def quota_record(entity: dict, key: str, value: float | None) -> mr.ClientQuotaRecord:
    return mr.ClientQuotaRecord(entity=[mr.ClientQuotaRecord.EntityData(entity_type=k, entity_name=v)
                                        for k, v in entity.items()],
                                key=key, value=0.0 if value is None else value, remove=value is None)


def test_image_listener_feeds_the_managers():
    quotas = ClientQuotas(clock=FakeClock())
    image = MetadataImage()
    image.listeners.append(quotas.on_record)
    image.apply(quota_record({"user": None, "client-id": "c"}, "producer_byte_rate", 100.0), 0)
    image.apply(quota_record({"user": "u"}, "consumer_byte_rate", 200.0), 1)
    image.apply(quota_record({"client-id": None}, "request_percentage", 30.0), 2)
    image.apply(quota_record({"user": "u", "client-id": None}, "controller_mutation_rate", 4.0), 3)
    image.apply(quota_record({"ip": None}, "connection_creation_rate", 5.0), 4)
    assert quotas.active
    assert quotas.produce.quota("anyone", "c") == 100.0
    assert quotas.fetch.quota("u", "x") == 200.0
    assert quotas.request.quota("u", "x") == 30.0
    assert quotas.controller_mutation.quota("u", "x") == 4.0
    assert quotas.ip.limit("1.2.3.4") == 5
    for entity, key, seq in [({"user": None, "client-id": "c"}, "producer_byte_rate", 5),
                             ({"user": "u"}, "consumer_byte_rate", 6), ({"client-id": None}, "request_percentage", 7)]:
        image.apply(quota_record(entity, key, None), seq)
    assert quotas.active  # the controller mutation quota is left
    assert image.client_quotas == {(("client-id", None), ("user", "u")): {"controller_mutation_rate": 4.0},
                                   (("ip", None),): {"connection_creation_rate": 5.0}}
    image.apply(quota_record({"user": "u", "client-id": None}, "controller_mutation_rate", None), 8)
    assert not quotas.active


def test_snapshot_removals_take_away_quotas_the_snapshot_lacks():
    old = MetadataImage()
    old.apply(quota_record({"user": "u"}, "producer_byte_rate", 1.0), 0)
    old.apply(quota_record({"user": "u"}, "consumer_byte_rate", 2.0), 1)
    old.apply(quota_record({"client-id": "gone"}, "producer_byte_rate", 3.0), 2)
    new = MetadataImage()
    new.apply(quota_record({"user": "u"}, "consumer_byte_rate", 2.0), 0)
    quotas = ClientQuotas(clock=FakeClock())
    old.listeners.append(quotas.on_record)
    for r in snapshot_removals(old, new) + image_to_records(new):
        old.apply(r, 10)
    assert old.client_quotas == new.client_quotas == {(("user", "u"),): {"consumer_byte_rate": 2.0}}
    assert records_to_image(image_to_records(new), 1).client_quotas == new.client_quotas
    assert quotas.produce.quota("u", "x") is None and quotas.produce.quota("x", "gone") is None


def test_principal_user():
    assert principal_user("User:alice") == "alice"
    assert principal_user("User:CN=x,O=y") == "CN=x,O=y"
    assert principal_user(None) == "ANONYMOUS"


def test_throttles_are_counted_for_the_metrics_endpoint():
    from types import SimpleNamespace

    from kbroker.metrics.collector import BrokerCollector

    clock = FakeClock()
    quotas = ClientQuotas(clock=clock)
    quotas.produce.update_quota(None, "c", 100)
    quotas.controller_mutation.update_quota("u", None, 1)
    quotas.active = True
    produce_response = SimpleNamespace(throttle_time_ms=0)
    throttle = quotas.response_throttle(0, "u", "c", 2000, 0.0, produce_response)
    assert throttle == produce_response.throttle_time_ms == 10_000  # 200 B/s against 100, over 10 s
    quotas.response_throttle(19, "u", "c", 50, 0.0, SimpleNamespace(throttle_time_ms=700))  # CreateTopics
    collector = BrokerCollector(SimpleNamespace(client_quotas=quotas), requests=None)
    families = {f.name: f for f in collector._quotas()}
    samples = {(s.labels["quota"], s.labels["user"], s.labels["client_id"]): s.value
               for s in families["kbroker_quota_throttle_time_ms"].samples if s.name.endswith("_total")}
    assert samples == {("Produce", "", "c"): 10_000, ("ControllerMutation", "u", ""): 700}
    counts = {s.labels["quota"]: s.value for s in families["kbroker_quota_throttled_responses"].samples
              if s.name.endswith("_total")}
    assert counts == {"Produce": 1, "ControllerMutation": 1}
