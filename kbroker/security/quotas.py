"""Client quotas as Kafka 4.4 enforces them (``ClientQuotaManager``, ``ControllerMutationQuotaManager``,
``ConnectionQuotas``' per-IP connection rate).

Quotas are ClientQuotaRecords in the metadata log (written by AlterClientQuotas, carried by snapshots;
see kbroker/metadata/image.py): an entity (``user``, ``client-id``, both, or ``ip``; a name of
None is the ``<default>`` entity) and a key:

- ``producer_byte_rate``: Produce request bytes per second;
- ``consumer_byte_rate``: Fetch response bytes per second (consumers; followers are not counted);
- ``request_percentage``: handler time, in percent of one thread, per second;
- ``controller_mutation_rate``: partitions created or deleted per second (CreateTopics,
  CreatePartitions, DeleteTopics), a token bucket;
- ``connection_creation_rate`` (``ip`` entities): connections accepted per second.

Which quota applies to a request is Kafka's order (user = the authenticated principal's name):
``user+client-id``, ``user+<default> client-id``, ``user``, ``<default> user+client-id``,
``<default> user+<default> client-id``, ``<default> user``, ``client-id``, ``<default> client-id``.
Usage is measured per *sensor*, keyed by (user, client-id) tags as Kafka's DefaultQuotaCallback
computes them, so clients sharing a quota entity share its usage (all users of a client-id quota,
every client id of a user quota).

The rate is Kafka's ``Rate`` over a ``SampledStat``: ``quota.window.num`` (11) samples of
``quota.window.size.seconds`` (1) each; the rate is the samples' sum over the elapsed time, counted
as at least ``samples - 1`` whole windows. A request that takes the rate over its bound gets a
throttle time ``(rate - bound) / bound * window`` (the time the rate needs to come back to the bound
with nothing more recorded); the value is recorded all the same (a throttled Fetch is answered empty,
and its bytes taken back). The response carries the time in ``throttle_time_ms`` and the connection
is not read for that long (KIP-219), see ``kbroker/server/connection.py``.

Nothing here runs on the request path while no quota of the kind is set: each manager's
``enabled`` is False and the callers check it (one attribute read per request).
"""

from __future__ import annotations

import logging
import math
import socket
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.config import BROKER_DEFAULTS
from kbroker.config.addresses import normal_address
from kbroker.security.quota_rates import Clock, Rate, Sensor, TokenBucket, monotonic_ms, round_half_up

if TYPE_CHECKING:
    from kbroker.config.broker_config import BrokerConfig
    from kbroker.metadata.client import Requester

log = logging.getLogger(__name__)

USER, CLIENT_ID, IP = "user", "client-id", "ip"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"
# Kafka's QuotaConfig: the keys of user/client-id entities and of ip entities, with their ConfigDef types.
USER_CLIENT_KEYS: dict[str, str] = {PRODUCER_BYTE_RATE: "LONG", CONSUMER_BYTE_RATE: "LONG",
                                    REQUEST_PERCENTAGE: "DOUBLE", CONTROLLER_MUTATION_RATE: "DOUBLE"}
IP_KEYS: dict[str, str] = {CONNECTION_CREATION_RATE: "INT"}

# Kafka's QuotaConfig defaults, as the key table declares them.
DEFAULT_SAMPLES: int = BROKER_DEFAULTS["quota.window.num"]
DEFAULT_WINDOW_SECONDS: int = BROKER_DEFAULTS["quota.window.size.seconds"]
INACTIVE_SENSOR_EXPIRATION_MS = 3_600_000  # ClientQuotaManager: sensors dropped after 1 h unused

# ClientQuotaManager's quotaTypesEnabled bits
NO_QUOTAS, CLIENT_ID_QUOTA_ENABLED, USER_QUOTA_ENABLED, USER_CLIENT_ID_QUOTA_ENABLED = 0, 1, 2, 4


class _Default:
    """The ``<default>`` user or client-id entity (an entity name of None in the records)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


DEFAULT = _Default()
EntityName = str | _Default | None
Entity = tuple[EntityName, EntityName]  # (user, client-id): None (absent), DEFAULT, or a name


class ClientQuotaManager:
    """One quota type (Produce, Fetch, Request, ControllerMutation) as Kafka's ClientQuotaManager
    with its DefaultQuotaCallback."""

    def __init__(self, name: str, samples: int = DEFAULT_SAMPLES, window_seconds: int = DEFAULT_WINDOW_SECONDS,
                 clock: Clock = monotonic_ms, token_bucket: bool = False, bounded: bool = False) -> None:
        self.name = name
        # Kafka's ClientRequestQuotaManager caps a throttle at one window (boundedThrottleTime)
        self.max_throttle_ms = int(window_seconds * 1000) if bounded else None
        self.samples = samples
        self.window_ms = window_seconds * 1000.0
        self.clock = clock
        self.token_bucket = token_bucket
        self.overrides: dict[Entity, float] = {}
        self.types_enabled = NO_QUOTAS
        self._type_counts: dict[int, int] = {}
        self.sensors: dict[tuple[str, str], Sensor] = {}
        self._last_expiry = 0.0
        self.enabled = False

    # -- configuration ---------------------------------------------------------------------

    def update_quota(self, user: EntityName, client_id: EntityName, value: float | None) -> None:
        """Set (or with None remove) the quota of an entity: ``user``/``client_id`` each None
        (absent), DEFAULT or a name."""
        entity = (user, client_id)
        kind = (USER_CLIENT_ID_QUOTA_ENABLED if user is not None and client_id is not None else
                USER_QUOTA_ENABLED if user is not None else
                CLIENT_ID_QUOTA_ENABLED if client_id is not None else NO_QUOTAS)
        active = entity in self.overrides
        if value is not None:
            if not active:
                self._type_counts[kind] = self._type_counts.get(kind, 0) + 1
                self.types_enabled |= kind
            self.overrides[entity] = float(value)
        else:
            if active:
                left = self._type_counts.get(kind, 0) - 1
                self._type_counts[kind] = max(left, 0)
                if left <= 0:
                    self.types_enabled &= ~kind
            self.overrides.pop(entity, None)
        self.enabled = self.types_enabled != NO_QUOTAS
        log.info("%s quota for %s set to %s; quota types enabled %d", self.name, _entity_text(entity), value,
                 self.types_enabled)
        # Kafka keeps each sensor's usage and changes its bound; a sensor whose tags no longer
        # arise (the quota levels changed) is simply not used again.
        for sensor in self.sensors.values():
            sensor.bound = self.quota_limit(sensor.tags)

    # -- Kafka's DefaultQuotaCallback -------------------------------------------------------

    def metric_tags(self, user: str, client_id: str) -> tuple[str, str]:
        """The (user, client-id) tags of the sensor a client's usage goes to."""
        enabled = self.types_enabled
        if enabled in (NO_QUOTAS, CLIENT_ID_QUOTA_ENABLED):
            return "", client_id
        if enabled == USER_QUOTA_ENABLED:
            return user, ""
        if enabled == USER_CLIENT_ID_QUOTA_ENABLED:
            return user, client_id
        o = self.overrides
        if (user, client_id) in o or (user, DEFAULT) in o:
            return user, client_id
        if (user, None) in o:
            return user, ""
        if (DEFAULT, client_id) in o or (DEFAULT, DEFAULT) in o:
            return user, client_id
        if (DEFAULT, None) in o:
            return user, ""
        return "", client_id

    def quota_limit(self, tags: tuple[str, str]) -> float | None:
        user, client_id = tags
        o = self.overrides.get
        if user and client_id:
            for entity in ((user, client_id), (user, DEFAULT), (DEFAULT, client_id), (DEFAULT, DEFAULT)):
                if (q := o(entity)) is not None:
                    return q
            return None
        if user:
            q = o((user, None))
            return q if q is not None else o((DEFAULT, None))
        if client_id:
            q = o((None, client_id))
            return q if q is not None else o((None, DEFAULT))
        return None

    def quota(self, user: str, client_id: str) -> float | None:
        """The bound that applies to a client (None: none)."""
        return self.quota_limit(self.metric_tags(user, client_id))

    # -- usage ----------------------------------------------------------------------------

    def sensor(self, user: str, client_id: str, now: float) -> Sensor:
        tags = self.metric_tags(user, client_id)
        sensor = self.sensors.get(tags)
        if sensor is None:
            if now - self._last_expiry >= 60_000:
                self._expire(now)
            stat: Rate | TokenBucket = (TokenBucket if self.token_bucket else Rate)(self.samples, self.window_ms)
            sensor = Sensor(tags, stat, self.quota_limit(tags), now)
            self.sensors[tags] = sensor
        sensor.last_record_ms = now
        return sensor

    def _expire(self, now: float) -> None:
        self._last_expiry = now
        stale = [t for t, s in self.sensors.items() if now - s.last_record_ms >= INACTIVE_SENSOR_EXPIRATION_MS]
        for tags in stale:
            del self.sensors[tags]

    def _throttle(self, sensor: Sensor, now: float) -> int:
        """Kafka's Sensor.checkQuotas and QuotaUtils.throttleTime for a Rate sensor."""
        bound = sensor.bound
        if bound is None:
            return 0
        stat = sensor.stat
        assert isinstance(stat, Rate)
        value, window = stat.rate_and_window(now)
        if value <= bound:
            return 0
        throttle = round_half_up((value - bound) / bound * window)
        return throttle if self.max_throttle_ms is None else min(throttle, self.max_throttle_ms)

    def record(self, user: str, client_id: str, value: float, now: float | None = None) -> int:
        """Record ``value`` for a client; the throttle time in ms (0 within the quota). Nothing
        is recorded while no quota of this type is set."""
        if not self.enabled:
            return 0
        now = self.clock() if now is None else now
        sensor = self.sensor(user, client_id, now)
        stat = sensor.stat
        assert isinstance(stat, Rate)
        stat.record(value, now)
        return self._throttle(sensor, now)

    def unrecord(self, user: str, client_id: str, value: float, now: float | None = None) -> None:
        """Take back ``value`` (a throttled Fetch answered empty)."""
        if not self.enabled:
            return
        now = self.clock() if now is None else now
        stat = self.sensor(user, client_id, now).stat
        assert isinstance(stat, Rate)
        stat.record(-value, now)

    def max_value_in_window(self, user: str, client_id: str) -> float:
        """The most that can be recorded at once without a certain throttle (a Fetch's byte cap)."""
        if not self.enabled:
            return math.inf
        limit = self.quota(user, client_id)
        if limit is None:
            return math.inf
        return limit * (self.samples - 1) * (self.window_ms / 1000.0)

    def throttled(self, user: str, client_id: str, throttle_ms: int) -> None:
        """Count a throttle of the channel (Kafka's throttle-time sensor)."""
        if throttle_ms <= 0 or not self.enabled:
            return
        now = self.clock()
        sensor = self.sensor(user, client_id, now)
        sensor.throttle_time.record(throttle_ms, now)
        sensor.throttle_total_ms += throttle_ms
        sensor.throttle_count += 1

    # -- controller mutations (token bucket) ------------------------------------------------

    def mutation_quota(self, user: str, client_id: str, strict: bool) -> MutationQuota:
        if not self.enabled:
            return UNBOUNDED_MUTATION_QUOTA
        return MutationQuota(self, user, client_id, strict)


class ThrottlingQuotaExceeded(Exception):
    """Kafka's ThrottlingQuotaExceededException: the controller mutation quota is used up."""

    def __init__(self, throttle_ms: int) -> None:
        super().__init__("The throttling quota has been exceeded.")
        self.throttle_ms = throttle_ms


class MutationQuota:
    """One request's controller mutation quota (Kafka's Strict/PermissiveControllerMutationQuota).

    Strict (CreateTopics v6+, DeleteTopics v5+, CreatePartitions v3+): a mutation is refused
    (:class:`ThrottlingQuotaExceeded`) while the bucket is below zero, else its partitions are taken
    (possibly going below zero). Permissive (older versions): always taken; the throttle time is
    reported only."""

    def __init__(self, manager: ClientQuotaManager | None, user: str, client_id: str, strict: bool) -> None:
        self.manager = manager
        self.user = user
        self.client_id = client_id
        self.strict = strict
        self.last_throttle_ms = 0
        self.last_recorded_ms = 0.0

    def record(self, permits: float) -> None:
        manager = self.manager
        if manager is None:
            return
        now = manager.clock()
        sensor = manager.sensor(self.user, self.client_id, now)
        bound = sensor.bound
        if bound is None:
            return
        bucket = sensor.stat
        assert isinstance(bucket, TokenBucket)
        if self.strict:
            tokens = bucket.measure(bound, now)
            if tokens < 0:
                self._violated(tokens, bound, now)
                raise ThrottlingQuotaExceeded(self.last_throttle_ms)
            bucket.record(bound, permits, now)
        else:
            bucket.record(bound, permits, now)
            tokens = bucket.measure(bound, now)
            if tokens < 0:
                self._violated(tokens, bound, now)

    def _violated(self, tokens: float, bound: float, now: float) -> None:
        self.last_throttle_ms = round_half_up(-tokens / bound * 1000)
        self.last_recorded_ms = now

    def throttle_time(self) -> int:
        """The throttle time for the response: what is left of the last one recorded."""
        if self.last_throttle_ms == 0 or self.manager is None:
            return 0
        elapsed = self.manager.clock() - self.last_recorded_ms
        return max(0, int(self.last_throttle_ms - elapsed))


UNBOUNDED_MUTATION_QUOTA = MutationQuota(None, "", "", False)


class IpConnectionQuotas:
    """``connection_creation_rate`` of ``ip`` entities (Kafka's ConnectionQuotas): a connection over
    its address's rate is accepted and closed after the throttle time (at most one window)."""

    def __init__(self, samples: int = DEFAULT_SAMPLES, window_seconds: int = DEFAULT_WINDOW_SECONDS,
                 clock: Clock = monotonic_ms) -> None:
        self.samples = samples
        self.window_ms = window_seconds * 1000.0
        self.clock = clock
        self.per_ip: dict[str, int] = {}
        self.default: int | None = None
        self.rates: dict[str, Rate] = {}
        self.enabled = False

    def update(self, ip: str | None, value: float | None) -> None:
        rate = None if value is None else int(value)
        if ip is None:
            self.default = rate
        else:
            address = _address(ip)
            if rate is None:
                self.per_ip.pop(address, None)
            else:
                self.per_ip[address] = rate
        self.enabled = self.default is not None or bool(self.per_ip)
        log.info("connection_creation_rate for %s set to %s", ip if ip is not None else "<default> ip", value)

    def limit(self, address: str) -> int | None:
        return self.per_ip.get(address, self.default)

    def record(self, address: str, now: float | None = None) -> int:
        """A connection from ``address`` is being accepted: the time to hold it before closing
        it (0: accept it)."""
        if not self.enabled:
            return 0
        address = normal_address(address)
        limit = self.limit(address)
        if limit is None:
            return 0
        now = self.clock() if now is None else now
        rate = self.rates.get(address)
        if rate is None:
            rate = self.rates[address] = Rate(self.samples, self.window_ms)
        rate.record(1.0, now)
        value, window = rate.rate_and_window(now)
        if value <= limit:
            return 0
        rate.record(-1.0, now)  # the connection is not accepted: not counted
        if limit <= 0:
            return int(self.window_ms)
        return min(round_half_up((value - limit) / limit * window), int(self.window_ms))


def _address(host: str) -> str:
    """An ip entity's address as the acceptor sees peers (a host name resolved, as Kafka's
    InetAddress.getByName)."""
    try:
        return normal_address(str(socket.getaddrinfo(host, None)[0][4][0]))
    except (OSError, IndexError, UnicodeError):
        return host


def _entity_text(entity: Entity) -> str:
    user, client_id = entity
    parts = []
    if user is not None:
        parts.append(f"user {user}")
    if client_id is not None:
        parts.append(f"client-id {client_id}")
    return " ".join(parts)


# APIs the request quota does not count: Kafka's cluster actions (ApiKeys' clusterAction: the
# inter-broker and Raft RPCs, Envelope, share-group state RPCs; DescribeQuorum and UpdateFeatures are
# admin requests and counted), and SaslHandshake/SaslAuthenticate, answered before KafkaApis.
REQUEST_QUOTA_EXEMPT = frozenset({
    4, 5, 6, 7, 27, 52, 53, 54, 56, 58, 62, 63, 67, 83, 84, 85, 86, 87,
    17, 36,
})


class ClientQuotas:
    """The broker's quota managers, kept up to date from the metadata image's ClientQuotaRecords."""

    def __init__(self, config: BrokerConfig | None = None, clock: Clock = monotonic_ms) -> None:
        def get(key: str) -> int:
            return int((BROKER_DEFAULTS if config is None else config)[key])

        samples, window = get("quota.window.num"), get("quota.window.size.seconds")
        self.produce = ClientQuotaManager("Produce", samples, window, clock)
        self.fetch = ClientQuotaManager("Fetch", samples, window, clock)
        self.request = ClientQuotaManager("Request", samples, window, clock, bounded=True)
        self.controller_mutation = ClientQuotaManager(
            "ControllerMutation", get("controller.quota.window.num"),
            get("controller.quota.window.size.seconds"), clock, token_bucket=True)
        self.ip = IpConnectionQuotas(samples, window, clock)
        self.by_key = {PRODUCER_BYTE_RATE: self.produce, CONSUMER_BYTE_RATE: self.fetch,
                       REQUEST_PERCENTAGE: self.request, CONTROLLER_MUTATION_RATE: self.controller_mutation}
        # Any quota a client request pays for on the connection (produce, fetch, request): the
        # connection's one check per request.
        self.active = False

    def on_record(self, record: Any) -> None:
        """Image listener: apply a ClientQuotaRecord (Kafka's ClientQuotaMetadataManager)."""
        if type(record).__name__ != "ClientQuotaRecord":
            return
        entity = {e.entity_type: e.entity_name for e in record.entity}
        value = None if record.remove else record.value
        if IP in entity:
            if record.key != CONNECTION_CREATION_RATE:
                log.warning("ignoring unexpected quota key %s for ip entity %s", record.key, entity[IP])
                return
            self.ip.update(entity[IP], value)
            return
        if USER not in entity and CLIENT_ID not in entity:
            log.warning("ignoring unsupported quota entity %s", entity)
            return
        manager = self.by_key.get(record.key)
        if manager is None:
            log.warning("ignoring unexpected quota key %s for entity %s", record.key, entity)
            return
        user = (DEFAULT if entity[USER] is None else entity[USER]) if USER in entity else None
        client_id = (DEFAULT if entity[CLIENT_ID] is None else entity[CLIENT_ID]) if CLIENT_ID in entity else None
        manager.update_quota(user, client_id, value)
        self.active = (self.produce.enabled or self.fetch.enabled or self.request.enabled
                       or self.controller_mutation.enabled)

    def response_throttle(self, api_key: int, user: str, client_id: str, size: int, busy_seconds: float,
                          response: object, exempt: bool = False) -> int:
        """A request is answered (``response`` None: a Produce with acks=0): record its Produce bytes
        and handler time, and return the time to throttle its connection, the largest of those
        quotas' and of what the handler put in the response (a Fetch's bandwidth throttle, a
        controller mutation throttle, a forwarded request's), which the response then carries.
        Kafka's KafkaApis.handleProduceRequest and RequestHandlerHelper.sendResponseMaybeThrottle."""
        bandwidth = 0
        if api_key == 0 and self.produce.enabled:
            bandwidth = self.produce.record(user, client_id, size)
        requested = 0
        if (self.request.enabled and not exempt and api_key not in REQUEST_QUOTA_EXEMPT
                and not (api_key == 0 and response is None)):
            requested = self.request.record(user, client_id, busy_seconds * 100.0)
        given = getattr(response, "throttle_time_ms", 0) if response is not None else 0
        throttle = max(bandwidth, requested, given)
        if throttle <= 0:
            return 0
        if given < throttle and response is not None and hasattr(response, "throttle_time_ms"):
            response.throttle_time_ms = throttle
        if bandwidth == throttle:
            self.produce.throttled(user, client_id, throttle)
        elif requested == throttle:
            self.request.throttled(user, client_id, throttle)
        elif api_key in (19, 20, 37):  # the controller's mutation throttle (the Fetch handler counts its own)
            self.controller_mutation.throttled(user, client_id, throttle)
        return throttle


def principal_user(principal: str | None) -> str:
    """The user a quota sees: the principal's name (``User:alice`` -> ``alice``)."""
    if not principal:
        return "ANONYMOUS"
    return principal.partition(":")[2] if ":" in principal else principal


class QuotaHost(Protocol):
    """The node whose client quotas a controller operation charges (``kbroker.broker.Broker``)."""

    @property
    def client_quotas(self) -> ClientQuotas: ...


def mutation_quota_for(broker: QuotaHost, requester: Requester | None, version: int, strict_since: int) -> MutationQuota:
    """The controller mutation quota of a CreateTopics/CreatePartitions/DeleteTopics request run on
    the controller (Kafka's ControllerMutationQuotaManager.newQuotaFor): strict from
    ``strict_since``, permissive before; none for the broker's own requests (no requester)."""
    quotas = broker.client_quotas
    if requester is None or not quotas.controller_mutation.enabled:
        return UNBOUNDED_MUTATION_QUOTA
    return quotas.controller_mutation.mutation_quota(requester.principal_name, requester.client_id or "",
                                                     strict=version >= strict_since)
