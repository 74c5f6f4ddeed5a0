"""Dead-letter queues of share groups (KIP-1191), as Kafka 4.4 writes them (``share.version`` 2).

A share group whose group config ``errors.deadletterqueue.topic.name`` names a topic has each
record it gives up on written there before the record is archived: a record a consumer REJECTs
("Offset rejected by client.") and one whose delivery count reached
``group.share.delivery.count.limit`` when it is released or its lock expires ("Offset delivery
count exceeded the threshold."). Each dead letter carries Kafka's headers ``__dlq.errors.topic``,
``__dlq.errors.partition``, ``__dlq.errors.offset``, ``__dlq.errors.group``,
``__dlq.errors.delivery.count`` and ``__dlq.errors.message``, the time of the write as its
timestamp, and, with the group config ``errors.deadletterqueue.copy.record.enable=true``, the
original record's key and value (else none). It goes to partition ``source partition % DLQ
partitions``.

As Kafka's ``ShareGroupDLQStateManager.validateDlqTopic``, a DLQ topic name starting with ``__`` is
refused, the name must start with ``errors.deadletterqueue.topic.name.prefix`` (``dlq.`` by
default; empty: any name), an existing topic must have ``errors.deadletterqueue.group.enable=true``,
and a missing one is created only with ``errors.deadletterqueue.auto.create.topics.enable=true``
(with ``errors.deadletterqueue.group.enable=true`` and ``message.timestamp.type=CreateTime``). When
any check fails the error is logged and the record is archived without a dead letter, as Kafka does.

A missing DLQ topic is asked of the active controller with a CreateTopics through the broker's
controller client (``replication.topics.create_topic``), once per topic while it is under way,
the same on the active controller's node and elsewhere; the dead letters of the records given up
meanwhile are written once the controller has answered and this node's image has the topic (the
records themselves are archived at once, as before). If the creation fails, they are dropped with
the error logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kbroker.coordinator.share_group_config import effective
from kbroker.coordinator.share_partition import split_batches
from kbroker.metadata.new_topic import NewTopic
from kbroker.replication.topics import create_topic
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.records import Record, build_batch, iter_records

if TYPE_CHECKING:
    from kbroker.coordinator.group_classic_model import Timer
    from kbroker.coordinator.hosts import CoordinatorHost

log = logging.getLogger(__name__)

CLIENT_REJECT = "Offset rejected by client."
DELIVERY_COUNT_EXCEEDED = "Offset delivery count exceeded the threshold."
DLQ_TOPIC_ENABLE = "errors.deadletterqueue.group.enable"


class DeadLetters:
    def __init__(self, broker: CoordinatorHost, timer: Timer) -> None:
        self.broker = broker
        self.timer = timer
        self.written = 0
        # DLQ topics asked of the controller: name -> the creation task, and the dead letters
        # waiting for it: (group, source topic, source partition, entries, cause)
        self._creating: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, list[tuple[str, str, int, list[tuple[int, int]], str]]] = {}

    def enabled(self, group_id: str) -> bool:
        """Kafka's ``isDLQEnabledForGroup``: share.version 2 and a DLQ topic configured."""
        return (self.broker.image.features.get("share.version", 0) >= 2
                and bool(effective(self.broker, group_id, "errors.deadletterqueue.topic.name")))

    def problem(self, group_id: str) -> str | None:
        """Kafka's ``validateDlqTopic``: why no dead letter can be written now, or None."""
        name = effective(self.broker, group_id, "errors.deadletterqueue.topic.name")
        if not name:
            return f"Configured DLQ topic name in share group: {group_id} is empty."
        if name.startswith("__"):
            return f"Configured DLQ topic name in share group: {group_id} cannot start with __, topic: {name}."
        topic = self.broker.image.topic(name)
        if topic is not None and topic.configs.get(DLQ_TOPIC_ENABLE, "false").lower() != "true":
            return f"DLQ is not enabled on configured DLQ topic for share group: {group_id}, topic: {name}."
        if topic is None and not self.broker.config["errors.deadletterqueue.auto.create.topics.enable"]:
            return (f"DLQ topic does not exist and auto create is disabled on cluster for share group: "
                    f"{group_id}, topic: {name}.")
        prefix = self.broker.config["errors.deadletterqueue.topic.name.prefix"]
        if prefix and not name.startswith(prefix):
            return (f"Configured DLQ topic name does not comply with the DLQ topic prefix in share group: "
                    f"{group_id}, topic: {name}, prefix: {prefix}.")
        return None

    def write(self, group_id: str, topic: str, partition: int, entries: list[tuple[int, int]], cause: str) -> int:
        """Dead letters for ``entries`` ((offset, delivery count)) of ``topic``-``partition``;
        returns how many were written (0 when the DLQ cannot be used: logged)."""
        if not entries:
            return 0
        problem = self.problem(group_id)
        if problem is not None:
            log.error("share group %s: no dead letters for %s-%d offsets %s: %s", group_id, topic, partition,
                      [o for o, _ in entries], problem)
            return 0
        name = effective(self.broker, group_id, "errors.deadletterqueue.topic.name")
        if self.broker.image.topic(name) is None:
            self._create(name, (group_id, topic, partition, entries, cause))
            return 0
        return self._append(name, group_id, topic, partition, entries, cause)

    def _create(self, name: str, waiting: tuple[str, str, int, list[tuple[int, int]], str]) -> None:
        """Ask the controller for the DLQ topic ``name`` (once while asked) and keep ``waiting``'s
        dead letters until it answers."""
        self._waiting.setdefault(name, []).append(waiting)
        if name in self._creating:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a broker driven by hand): nobody to ask
            log.error("share group %s: cannot create DLQ topic %s without an event loop", waiting[0], name)
            self._waiting.pop(name, None)
            return
        self._creating[name] = loop.create_task(self._create_then_write(name), name=f"create-dlq-{name}")

    async def _create_then_write(self, name: str) -> None:
        try:
            try:
                result = await create_topic(self.broker, NewTopic(name, configs={
                    DLQ_TOPIC_ENABLE: "true", "message.timestamp.type": "CreateTime"}))
                error, message = result.error, result.message
            except Exception as exc:  # no controller answered
                error, message = ErrorCode.REQUEST_TIMED_OUT, str(exc)
        finally:
            del self._creating[name]
        waiting = self._waiting.pop(name, [])
        if error not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            for group_id, topic, partition, entries, _cause in waiting:
                log.error("share group %s: cannot create DLQ topic %s: %s %s; no dead letters for %s-%d offsets %s",
                          group_id, name, error.name, message, topic, partition, [o for o, _ in entries])
            return
        for group_id, topic, partition, entries, cause in waiting:
            try:
                self._append(name, group_id, topic, partition, entries, cause)
            except Exception:  # (as a failed append where write is called: logged, the records stay archived)
                log.exception("share group %s: dead letters for %s-%d not written to %s", group_id, topic,
                              partition, name)

    def _append(self, name: str, group_id: str, topic: str, partition: int, entries: list[tuple[int, int]],
                cause: str) -> int:
        dlq = self.broker.image.topic(name)
        if dlq is None or not dlq.partitions:
            log.error("share group %s: DLQ topic %s is not in this broker's metadata yet; no dead letters for "
                      "%s-%d offsets %s", group_id, name, topic, partition, [o for o, _ in entries])
            return 0
        target = self.broker.partition(name, partition % len(dlq.partitions))
        if target is None:
            log.error("share group %s: DLQ topic %s partition %d is not led here", group_id, name,
                      partition % len(dlq.partitions))
            return 0
        originals = self._originals(topic, partition, [o for o, _ in entries]) \
            if effective(self.broker, group_id, "errors.deadletterqueue.copy.record.enable") else {}
        now = self.timer.now_ms()
        records = []
        for offset, delivery_count in entries:
            original = originals.get(offset)
            headers = (
                ("__dlq.errors.topic", topic.encode()),
                ("__dlq.errors.partition", str(partition).encode()),
                ("__dlq.errors.offset", str(offset).encode()),
                ("__dlq.errors.group", group_id.encode()),
                ("__dlq.errors.delivery.count", str(delivery_count).encode()),
                ("__dlq.errors.message", cause.encode()),
            )
            records.append(Record(key=original.key if original else None, value=original.value if original else None,
                                  headers=headers, timestamp=now))
        self.broker.replica_manager.append_internal(target, build_batch(records))
        self.written += len(records)
        log.info("share group %s: %d dead letters for %s-%d written to %s", group_id, len(records), topic,
                 partition, name)
        return len(records)

    def _originals(self, topic: str, partition: int, offsets: list[int]) -> dict[int, Record]:
        """The source records at ``offsets`` (for errors.deadletterqueue.copy.record.enable)."""
        p = self.broker.partition(topic, partition)
        if p is None or not offsets:
            return {}
        wanted = set(offsets)
        out: dict[int, Record] = {}
        position = min(offsets)
        last = max(offsets)
        try:
            while position <= last:
                read = p.log.read(position, 1 << 20, max_offset=p.high_watermark, min_one_batch=True)
                if not read.slices:
                    break
                batches = split_batches(read.read())
                for b in batches:
                    if b.is_control:
                        continue
                    for r in iter_records(b.data):
                        if r.offset in wanted:
                            out[r.offset] = r
                position = batches[-1].last_offset + 1 if batches else last + 1
        except Exception:
            log.exception("reading the records of %s-%d for dead letters failed", topic, partition)
        return out
