"""The broker's metrics, read at scrape time from the state the broker already keeps.

Names follow what the Prometheus JMX exporter's Kafka rules make of Kafka's MBeans (so existing
dashboards need little change), and kafka-exporter's ``kafka_consumergroup_*`` for group lag:

- ``kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=t`` (a meter's Count) becomes
  ``kafka_server_brokertopicmetrics_bytesin_total{topic="t"}``;
- ``kafka.network:type=RequestMetrics,name=RequestsPerSec,request=Produce`` becomes
  ``kafka_network_requestmetrics_requests_total{request="Produce"}``;
- gauges keep their name lower-cased: ``kafka_server_replicamanager_underreplicatedpartitions``.

The per-topic counters are plain ints on each hosted :class:`~kbroker.replication.partition.Partition`
(a partition's counters go with it when it is deleted, as Kafka removes a deleted topic's metrics);
everything else is computed here from the logs, the metadata image, the group offsets and the
connection set.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kbroker.log.partition_log import FLUSH_BOUNDS_MS
from kbroker.metrics.request_text import cumulative
from kbroker.metrics.requests import RequestStats
from kbroker.replication.leadership import is_under_min_isr
from kbroker.security.quota_rates import Rate
from kbroker_protocol.messages import API_NAMES

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.controller.quorum import QuorumController, RaftLogView
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.log.partition_log import PartitionLog
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.partition import Partition
    from kbroker.replication.replica_manager import ReplicaManager
    from kbroker.security.quotas import ClientQuotas
    from kbroker.security.replication_quotas import ReplicationQuotas
    from kbroker.server.connection import KafkaConnection

NO_LEADER = -1
# (metric suffix, Partition attribute, help) for kafka_server_brokertopicmetrics_<suffix>_total.
TOPIC_COUNTERS = (
    ("bytesin", "bytes_in", "Record batch bytes appended by clients' Produce requests."),
    ("messagesin", "messages_in", "Records appended by clients' Produce requests."),
    ("bytesout", "bytes_out", "Record bytes sent in Fetch responses."),
    ("totalproducerequests", "produce_requests", "Produce requests to a partition of the topic."),
    ("failedproducerequests", "failed_produce", "Produce requests to a partition of the topic that failed."),
    ("totalfetchrequests", "fetch_requests", "Fetch responses carrying a partition of the topic."),
    ("failedfetchrequests", "failed_fetch", "Fetch responses with an error for a partition of the topic."),
)


class BuiltCoordinators(Protocol):
    """The broker's coordinators as a scrape reads them (``kbroker.wiring.coordinators.Coordinators``):
    the group coordinator only if something built it (a scrape builds none; unbuilt, it has no groups)."""

    def built_group(self) -> GroupCoordinator | None: ...


class CollectedBroker(Protocol):
    """What the collector reads of the broker at scrape time (``kbroker.broker.Broker``)."""

    config: BrokerConfig
    node_id: int
    image: MetadataImage

    @property
    def partitions(self) -> Mapping[tuple[str, int], Partition]: ...

    @property
    def replica_manager(self) -> ReplicaManager: ...

    @property
    def controller(self) -> QuorumController | None: ...

    @property
    def metadata_log(self) -> PartitionLog | RaftLogView | None: ...  # None before start

    @property
    def coordinators(self) -> BuiltCoordinators: ...

    @property
    def connections(self) -> Collection[KafkaConnection]: ...

    @property
    def bound(self) -> Mapping[str, tuple[str, int]]: ...  # listener name -> bound address

    @property
    def client_quotas(self) -> ClientQuotas: ...

    @property
    def replication_quotas(self) -> ReplicationQuotas: ...

    def partition(self, topic: str, index: int) -> Partition | None: ...


class BrokerCollector(Collector):
    def __init__(self, broker: CollectedBroker, requests: RequestStats) -> None:
        self.broker = broker
        self.requests = requests

    def collect(self) -> Iterator[Metric]:
        yield from self._topics()
        yield from self._requests()
        yield from self._replication()
        yield from self._controller()
        yield from self._logs()
        yield from self._groups()
        yield from self._connections()
        yield from self._quotas()
        yield from self._replication_quotas()

    def traffic_totals(self) -> dict[str, float]:
        """This broker's bytes in, bytes out and messages in, over every hosted partition: what the
        per-topic counters add up to (the console's throughput chart samples it)."""
        bytes_in = bytes_out = messages_in = 0
        for partition in list(self.broker.partitions.values()):
            bytes_in += partition.bytes_in
            bytes_out += partition.bytes_out
            messages_in += partition.messages_in
        return {"bytes_in": bytes_in, "bytes_out": bytes_out, "messages_in": messages_in}

    def _topics(self) -> Iterator[Metric]:
        totals: dict[str, list[int]] = {}
        for (topic, _index), partition in list(self.broker.partitions.items()):
            row = totals.get(topic)
            if row is None:
                row = totals[topic] = [0] * len(TOPIC_COUNTERS)
            for i, (_name, attr, _help) in enumerate(TOPIC_COUNTERS):
                row[i] += getattr(partition, attr)
        for i, (name, _attr, help_text) in enumerate(TOPIC_COUNTERS):
            family = CounterMetricFamily(f"kafka_server_brokertopicmetrics_{name}", help_text, labels=["topic"])
            for topic in sorted(totals):
                family.add_metric([topic], totals[topic][i])
            yield family

    def _requests(self) -> Iterator[Metric]:
        """Requests answered and handler failures per API. The request-time histograms are
        written apart (:mod:`kbroker.metrics.request_text`): most of a scrape, kept per API."""
        count = CounterMetricFamily("kafka_network_requestmetrics_requests",
                                    "Requests answered, by API.", labels=["request"])
        failed = CounterMetricFamily("kbroker_network_requestmetrics_handler_failures",
                                     "Requests whose handler raised (answered with UNKNOWN_SERVER_ERROR "
                                     "or the connection closed), by API.", labels=["request"])
        for api_key, stats in sorted(self.requests.apis.items()):
            name = API_NAMES.get(api_key, str(api_key))
            count.add_metric([name], stats.count)
            failed.add_metric([name], stats.failed)
        yield count
        yield failed

    def _replication(self) -> Iterator[Metric]:
        broker = self.broker
        hosted = list(broker.partitions.values())
        under, under_min = under_replicated(hosted)
        image = broker.image
        leaders = sum(1 for t in image.topics.values() for s in t.partitions.values()
                      if s.leader == broker.node_id)
        yield GaugeMetricFamily("kafka_server_replicamanager_underreplicatedpartitions",
                                "Partitions this broker leads whose ISR is smaller than their replica set.",
                                value=under)
        yield GaugeMetricFamily("kafka_server_replicamanager_underminisrpartitioncount",
                                "Partitions this broker leads whose ISR is smaller than min.insync.replicas "
                                "(at most the replica count).", value=under_min)
        yield GaugeMetricFamily("kafka_server_replicamanager_partitioncount",
                                "Partitions hosted by this broker.", value=len(hosted))
        yield GaugeMetricFamily("kafka_server_replicamanager_leadercount",
                                "Partitions this broker leads.", value=leaders)
        manager = broker.replica_manager
        yield CounterMetricFamily("kafka_server_replicamanager_isrexpands",
                                  "ISR expansions of partitions this broker leads, accepted by the controller.",
                                  value=manager.isr_expands)
        yield CounterMetricFamily("kafka_server_replicamanager_isrshrinks",
                                  "ISR shrinks of partitions this broker leads, accepted by the controller.",
                                  value=manager.isr_shrinks)
        live = {b.broker_id for b in image.brokers.values() if not b.fenced}
        offline = sum(1 for t in image.topics.values() for s in t.partitions.values()
                      if s.leader == NO_LEADER or s.leader not in live)
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_offlinepartitionscount",
                                "Partitions without a live leader, from the metadata image.", value=offline)
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_globalpartitioncount",
                                "Partitions in the metadata image.",
                                value=sum(len(t.partitions) for t in image.topics.values()))
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_globaltopiccount",
                                "Topics in the metadata image.", value=len(image.topics))

    def _controller(self) -> Iterator[Metric]:
        broker = self.broker
        controller = broker.controller
        roles = broker.config["process.roles"] or []
        active = 1 if controller is not None and "controller" in roles and controller.is_active() else 0
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_activecontrollercount",
                                "1 when this node is the active controller.", value=active)
        applied = broker.image.offset
        yield GaugeMetricFamily("kafka_server_broker_metadata_metrics_last_applied_record_offset",
                                "Offset of the last metadata record applied to this broker's image.",
                                value=applied)
        metadata_log = broker.metadata_log
        if metadata_log is not None:
            committed = metadata_log.high_watermark - 1
            yield GaugeMetricFamily("kafka_controller_kafkacontroller_lastcommittedrecordoffset",
                                    "Offset of the last committed record in the metadata log.", value=committed)
            yield GaugeMetricFamily("kbroker_metadata_lag_records",
                                    "Committed metadata records not yet applied to this broker's image.",
                                    value=max(0, committed - applied))

    def _logs(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("kafka_log_log_size", "Bytes of a partition's log segments.",
                                 labels=["topic", "partition"])
        end = GaugeMetricFamily("kafka_log_log_logendoffset", "A partition's log end offset.",
                                labels=["topic", "partition"])
        start = GaugeMetricFamily("kafka_log_log_logstartoffset", "A partition's log start offset.",
                                  labels=["topic", "partition"])
        segments = GaugeMetricFamily("kafka_log_log_numlogsegments", "A partition's segment count.",
                                     labels=["topic", "partition"])
        for (topic, index), partition in sorted(self.broker.partitions.items()):
            plog = partition.log
            labels = [topic, str(index)]
            size.add_metric(labels, plog.size)
            end.add_metric(labels, plog.log_end_offset)
            start.add_metric(labels, plog.log_start_offset)
            segments.add_metric(labels, len(plog.segments))
        yield size
        yield end
        yield start
        yield segments
        yield self._flushes()

    def _flushes(self) -> HistogramMetricFamily:
        """Kafka's LogFlushStats: fsyncs of partition logs (and the metadata log), broker-wide."""
        logs: list[PartitionLog | RaftLogView] = [p.log for p in list(self.broker.partitions.values())]
        metadata_log = self.broker.metadata_log
        if metadata_log is not None:
            logs.append(metadata_log)
        totals = [0] * (len(FLUSH_BOUNDS_MS) + 1)
        total_ms = 0.0
        for plog in logs:
            buckets = plog.flush_buckets
            if buckets is not None:
                for i, n in enumerate(buckets):
                    totals[i] += n
                total_ms += plog.flush_ms
        family = HistogramMetricFamily("kafka_log_logflushstats_logflushrateandtimems",
                                       "Time to fsync a log's new data, in milliseconds.")
        family.add_metric([], cumulative(FLUSH_BOUNDS_MS, totals), total_ms)
        return family

    def _groups(self) -> Iterator[Metric]:
        """kafka-exporter's group metrics: committed offset and lag (high watermark minus the
        committed offset) per group and partition this broker leads."""
        current = GaugeMetricFamily("kafka_consumergroup_current_offset",
                                    "A group's committed offset for a partition.",
                                    labels=["consumergroup", "topic", "partition"])
        lag = GaugeMetricFamily("kafka_consumergroup_lag",
                                "A partition's high watermark minus the group's committed offset.",
                                labels=["consumergroup", "topic", "partition"])
        coordinator = self.broker.coordinators.built_group()
        committed = coordinator.offsets.committed if coordinator is not None else {}
        for group in sorted(committed):
            for (topic, index), value in sorted(committed[group].items()):
                partition = self.broker.partition(topic, index)
                if partition is None:
                    continue
                labels = [group, topic, str(index)]
                current.add_metric(labels, value.offset)
                lag.add_metric(labels, max(0, partition.high_watermark - value.offset))
        yield current
        yield lag

    def _connections(self) -> Iterator[Metric]:
        counts = dict.fromkeys(self.broker.bound, 0)
        for conn in list(self.broker.connections):
            name = conn.endpoint.listener
            counts[name] = counts.get(name, 0) + 1
        family = GaugeMetricFamily("kafka_server_socketservermetrics_connection_count",
                                   "Open client connections, by listener.", labels=["listener"])
        for name in sorted(counts):
            family.add_metric([name], counts[name])
        yield family


    def _quotas(self) -> Iterator[Metric]:
        """Client quotas, per quota (Kafka's quota type: Produce, Fetch, Request,
        ControllerMutation) and the user/client-id tags of its sensor (an empty tag: the quota is
        shared by all), as the Prometheus JMX exporter's Kafka rules name Kafka's per user/client-id
        quota metrics (``kafka.server:type=Produce,user=U,client-id=C`` attribute ``throttle-time``
        becomes ``kafka_server_quota_throttle_time{resource="Produce",user="U",clientId="C"}``; an
        empty tag is left out of Kafka's MBean name, and a Prometheus label with an empty value is no
        label): ``throttle-time`` (the mean throttle of the responses throttled in the sensor's last
        30-60 s, NaN when none), ``byte-rate`` (Produce, Fetch) and ``request-time`` (Request: percent
        of a thread). And, Kafka having no counter of them, the throttled responses and their
        throttle time since the broker started."""
        quotas = self.broker.client_quotas
        labels = ["resource", "user", "clientId"]
        average = GaugeMetricFamily("kafka_server_quota_throttle_time",
                                    "Mean throttle time (ms) of the responses a client quota throttled in its last "
                                    "30-60 s (Kafka's throttle-time; NaN: none), by quota and its user/client-id.",
                                    labels=labels)
        byte_rate = GaugeMetricFamily("kafka_server_quota_byte_rate",
                                      "Bytes per second a Produce or Fetch client quota measures (Kafka's byte-rate), "
                                      "by quota and its user/client-id.", labels=labels)
        request_time = GaugeMetricFamily("kafka_server_quota_request_time",
                                         "Request handling time in percent of a thread the Request client quota "
                                         "measures (Kafka's request-time), by its user/client-id.", labels=labels)
        count = CounterMetricFamily("kbroker_quota_throttled_responses",
                                    "Responses throttled by a client quota, by quota and its user/client-id.",
                                    labels=labels)
        total = CounterMetricFamily("kbroker_quota_throttle_time_ms",
                                    "Throttle time given by a client quota, in ms, by quota and its user/client-id.",
                                    labels=labels)
        for manager in (quotas.produce, quotas.fetch, quotas.request, quotas.controller_mutation):
            now = manager.clock()
            rate = byte_rate if manager is quotas.produce or manager is quotas.fetch else \
                request_time if manager is quotas.request else None
            for (user, client_id), sensor in list(manager.sensors.items()):
                tags = [manager.name, sanitized_user(user), client_id]
                average.add_metric(tags, sensor.throttle_time.measure(now))
                if rate is not None and isinstance(sensor.stat, Rate):
                    rate.add_metric(tags, sensor.stat.measure(now))
                if sensor.throttle_count:
                    count.add_metric(tags, sensor.throttle_count)
                    total.add_metric(tags, sensor.throttle_total_ms)
        yield average
        yield byte_rate
        yield request_time
        yield count
        yield total


    def _replication_quotas(self) -> Iterator[Metric]:
        """Replication throttles (Kafka's LeaderReplication / FollowerReplication ``byte-rate``
        sensors of ReplicationQuotaManager) and the partitions they left out of fetches."""
        quotas = self.broker.replication_quotas
        for side in (quotas.leader, quotas.follower):
            yield GaugeMetricFamily(f"kafka_server_{side.kind}replication_byte_rate",
                                    f"Bytes per second of throttled partitions, {side.kind} side (replication quota).",
                                    value=side.byte_rate())
        family = CounterMetricFamily("kbroker_replication_throttled_partitions",
                                     "Partitions left out of a replica fetch by a replication throttle, by side.",
                                     labels=["side"])
        for side in (quotas.leader, quotas.follower):
            family.add_metric([side.kind], side.throttled_total)
        yield family


def sanitized_user(user: str) -> str:
    """A user as Kafka's quota metrics tag it (DefaultQuotaCallback.quotaMetricTags:
    ``Sanitizer.sanitize``, Java's URLEncoder with ``*`` and a space percent-encoded): every byte
    but letters, digits and ``.-_`` as %XX of its UTF-8."""
    return quote(user, safe="").replace("~", "%7E")


def under_replicated(hosted: list[Partition]) -> tuple[int, int]:
    """Kafka's UnderReplicatedPartitions and UnderMinIsrPartitionCount over the hosted partitions:
    counted by their leader only (Partition.isUnderReplicated / isUnderMinIsr), the ISR against
    the replica count and against the effective min ISR, min.insync.replicas capped at the
    replica count (Partition.effectiveMinIsr: a setting above it is allowed)."""
    under = sum(1 for p in hosted if p.is_leader and len(p.isr) < len(p.replicas))
    return under, sum(1 for p in hosted if is_under_min_isr(p))
