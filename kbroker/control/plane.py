"""The control plane: what a test changes in a running broker (faults, pause, trace, reset).

The broker owns one :class:`ControlPlane` (``broker.control``), run as a service. The request
dispatcher (``KafkaConnection._handle_frame``) reads ``broker.request_hooks`` before calling a
handler; it is None while no fault rule, pause or trace is set, so a broker without them pays one
attribute read per request. When set, it is this object, and :meth:`intercept` may replace the
handler (with an injected error, a delay, ...) or close the connection.

Every operation runs on the broker's event loop; the HTTP endpoint (:mod:`kbroker.control.http`),
the embedded API (:mod:`kbroker.testing`) and ``kbroker ctl`` all end here.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from kbroker.api.context import ClientConnection, RequestContext
from kbroker.api.registry import Handler
from kbroker.control.faults import FaultInjector, FaultRule, RuleError
from kbroker_protocol.primitives import Message

if TYPE_CHECKING:
    from kbroker.api.context import HandlerContext
    from kbroker.config.broker_config import BrokerConfig
    from kbroker.control.host import ControlledBroker
    from kbroker.control.http import ControlServer
    from kbroker.control.trace import Tracer
    from kbroker.json_types import JsonObject
    from kbroker.log.partition_log import PartitionLog
    from kbroker.server.connection import RequestHooks

log = logging.getLogger("kbroker.control")


class ControlPlane:
    def __init__(self, broker: ControlledBroker, set_hooks: Callable[[RequestHooks | None], None]) -> None:
        """``set_hooks``: the composition root's, to make the dispatcher consult this control plane
        (or no one: None) on every request."""
        self.broker = broker
        self._set_hooks = set_hooks
        self.faults = FaultInjector(on_change=self._update)
        self.tracer: Tracer | None = None
        self.http: ControlServer | None = None
        self._paused: asyncio.Event | None = None  # set when serving resumes
        self.paused_requests = 0
        self.disk_full = False
        self._full_logs: list[PartitionLog] = []  # logs whose append raises ENOSPC while the disk is "full"

    # -- the dispatcher hook ------------------------------------------------------------------

    def _update(self) -> None:
        active = self.faults.active or self._paused is not None or self.tracer is not None or self.disk_full
        self._set_hooks(self if active else None)

    def intercept(self, ctx: RequestContext[object], body: Message, handler: Handler, size: int) -> Handler | None:
        """The handler to run for this request (None: the connection was closed)."""
        tracer = self.tracer
        if self.disk_full and ctx.header.request_api_key == 0:
            self._fill_disk()  # partitions created since the disk filled
        rule: FaultRule | None = None
        if self.faults.rules:
            rule = self.faults.select(ctx, body, self.broker.image)
            if rule is not None:
                wrapped = self.faults.wrap(rule, ctx, body, handler)
                if wrapped is None:
                    if tracer is not None:
                        tracer.closed(ctx, body, size, rule)
                    return None
                handler = wrapped
        if self._paused is not None:
            handler = self._wait_resumed(handler, self._paused)
        if tracer is not None:
            handler = tracer.wrap(ctx, body, size, handler, rule)
        return handler

    def refused(self, connection: ClientConnection, api_key: int, api_version: int, correlation_id: int | None,
                client_id: str | None, reason: str) -> None:
        """A request the dispatcher refused before any handler (unsupported API or version)."""
        if self.tracer is not None:
            self.tracer.refused(connection, api_key, api_version, correlation_id, client_id, reason)

    def _wait_resumed(self, handler: Handler, resumed: asyncio.Event) -> Handler:
        async def run(ctx: HandlerContext[object], body: Message) -> Any:
            self.paused_requests += 1
            try:
                await resumed.wait()
            finally:
                self.paused_requests -= 1
            result = handler(ctx, body)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            return result

        return run

    # -- service lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        config = self.broker.config
        trace_file = config.get("kbroker.trace.file")
        if trace_file:
            from kbroker.control.trace import validate_filters
            from kbroker.errors import StartupError

            try:
                filters = validate_filters(_trace_filter_from_config(config))
                self.start_trace(trace_file, filters)
            except RuleError as exc:
                key = {"api": "kbroker.trace.apis", "client_id": "kbroker.trace.client.ids",
                       "topic": "kbroker.trace.topics"}.get(exc.field, exc.field)
                raise StartupError(f"{key}: {str(exc).split(': ', 1)[1]}") from None
            except OSError as exc:
                raise StartupError(f"kbroker.trace.file: cannot write {trace_file}: {exc.strerror}") from None
        listeners = config.get("kbroker.control.listeners") or []
        if listeners:
            from kbroker.control.http import ControlServer

            self.http = ControlServer(self, listeners, allow_remote=config.get("kbroker.control.allow.remote", False))
            await self.http.start()

    async def stop(self) -> None:
        if self._paused is not None:
            self.resume()
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self.tracer is not None:
            self.stop_trace()

    # -- faults ------------------------------------------------------------------------------

    def add_faults(self, spec: object) -> list[dict[str, Any]]:
        """Add one rule (a mapping) or several (a list, all or none); returns their descriptions."""
        if isinstance(spec, list):
            rules = self.faults.add_many(spec)
        elif isinstance(spec, Mapping):
            rules = [self.faults.add(spec)]
        else:
            raise RuleError("body", "expected a JSON object (or a list of them)")
        return [rule.describe() for rule in rules]

    def list_faults(self) -> list[dict[str, Any]]:
        return [rule.describe() for rule in self.faults.rules.values()]

    def fired(self, rule_id: int | None = None) -> list[JsonObject]:
        return [dict(e) for e in self.faults.history if rule_id is None or e["rule"] == rule_id]

    def remove_fault(self, rule_id: int) -> bool:
        return self.faults.remove(rule_id)

    def clear_faults(self) -> int:
        return self.faults.clear()

    # -- pause -------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused is not None

    def pause(self) -> None:
        """Stop serving: every request from now on waits (in order) until :meth:`resume`."""
        if self._paused is None:
            self._paused = asyncio.Event()
            log.info("serving paused: requests queue until resumed")
            self._update()

    def resume(self) -> None:
        if self._paused is not None:
            event, self._paused = self._paused, None
            event.set()
            log.info("serving resumed (%d requests were waiting)", self.paused_requests)
            self._update()

    # -- reset and snapshot ------------------------------------------------------------------

    async def reset(self, *, drop_connections: bool = False) -> dict[str, object]:
        """Back to a fresh broker (see :func:`kbroker.control.state.reset`)."""
        from kbroker.control.state import reset

        return await reset(self.broker, drop_connections=drop_connections)

    async def snapshot(self, path: str) -> dict[str, object]:
        """Copy the whole state to ``path`` (see :func:`kbroker.control.state.snapshot`)."""
        from kbroker.control.state import snapshot

        return await snapshot(self.broker, path)

    # -- leadership ----------------------------------------------------------------------------

    async def move_leadership(self, topic: str, partition: int) -> JsonObject:
        """Elect the partition's leader again (a one-broker cluster has nowhere else to move it):
        the leader epoch goes up, as after a leader change in Kafka, so a fetcher still on the
        old epoch gets FENCED_LEADER_EPOCH; the next Produce to it gets NOT_LEADER_OR_FOLLOWER
        once, with the new leader and epoch (Produce v10+), and clients refresh their metadata.
        The election is the controller's own write (``controller.node_writes.reelect_leader``,
        awaited): KeyError for a partition the metadata does not have, ControllerError
        NOT_CONTROLLER on a node that is not the active controller."""
        from kbroker.controller.node_writes import reelect_leader, require_active

        leader, epoch = await reelect_leader(require_active(self.broker.controller), topic, partition)
        rule = self.faults.add({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "topic": topic,
                                "partition": partition, "count": 1})
        log.info("leadership of %s-%d moved: leader %d epoch %d", topic, partition, leader, epoch)
        return {"topic": topic, "partition": partition, "leader": leader, "leader_epoch": epoch,
                "rule": rule.id}

    def move_coordinator(self, *, group: str | None = None, transactional_id: str | None = None
                         ) -> JsonObject:
        """Move a group's or a transactional id's coordinator: the next request to the old one
        gets NOT_COORDINATOR (once); FindCoordinator then names the new location (this broker,
        the only one), as after a coordinator moves in Kafka and the client rediscovers it."""
        if (group is None) == (transactional_id is None):
            raise RuleError("group", "give a group or a transactional_id")
        target: dict[str, str | None]
        if group is not None:
            rule = self.faults.add({"api": GROUP_COORDINATOR_APIS, "error": "NOT_COORDINATOR", "group": group,
                                    "count": 1})
            target = {"group": group}
        else:
            rule = self.faults.add({"api": TXN_COORDINATOR_APIS, "error": "NOT_COORDINATOR",
                                    "transactional_id": transactional_id, "count": 1})
            target = {"transactional_id": transactional_id}
        log.info("coordinator of %s moved", target)
        return {**target, "coordinator": self.broker.node_id, "rule": rule.id}

    # -- a full disk -------------------------------------------------------------------------

    def set_disk_full(self, full: bool) -> None:
        """Every append to a partition log fails with ENOSPC until the disk is "freed": a Produce
        gets KAFKA_STORAGE_ERROR for each partition, as from Kafka when an append fails on a
        full disk; coordinator writes (offset commits, transaction state) fail too. Reads work."""
        if full and not self.disk_full:
            self.disk_full = True
            self._fill_disk()
            log.warning("disk full (injected): appends fail with ENOSPC")
        elif not full and self.disk_full:
            self.disk_full = False
            for plog in self._full_logs:
                vars(plog).pop("append", None)
            self._full_logs.clear()
            log.warning("disk space back (injected fault removed)")
        self._update()

    def _fill_disk(self) -> None:
        for partition in list(self.broker.partitions.values()):
            plog = partition.log
            if "append" not in vars(plog):
                vars(plog)["append"] = _no_space  # shadows the method on this instance only
                self._full_logs.append(plog)

    # -- trace -------------------------------------------------------------------------------

    def start_trace(self, path: str | None, filters: Mapping[str, list[str]] | None = None) -> None:
        from kbroker.control.trace import Tracer

        if self.tracer is not None:
            self.tracer.close()
        self.tracer = Tracer(self.broker, path, filters or {})
        log.info("protocol trace on%s", f", writing {path}" if path else "")
        self._update()

    def stop_trace(self) -> None:
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
            log.info("protocol trace off")
            self._update()

    def status(self) -> JsonObject:
        return {
            "node_id": self.broker.node_id,
            "bootstrap_servers": self.broker.bootstrap_servers,
            "faults": len(self.faults.rules),
            "faults_fired": self.faults.fired_total,
            "paused": self.paused,
            "trace": self.tracer is not None,
            "disk_full": self.disk_full,
            "clock": "manual" if self.broker.clock is not None else "real",
        }


# The requests a group / transaction coordinator answers (FindCoordinator is not one of them).
GROUP_COORDINATOR_APIS = ["JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch",
                          "DescribeGroups", "DeleteGroups", "OffsetDelete", "ConsumerGroupHeartbeat",
                          "ConsumerGroupDescribe", "TxnOffsetCommit"]
TXN_COORDINATOR_APIS = ["InitProducerId", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn",
                        "DescribeTransactions"]


def _no_space(*args: object, **kwargs: object) -> NoReturn:
    raise OSError(errno.ENOSPC, "No space left on device (injected by kbroker's control endpoint)")


def _trace_filter_from_config(config: BrokerConfig) -> JsonObject:
    out: JsonObject = {}
    for key, name in (("kbroker.trace.apis", "api"), ("kbroker.trace.client.ids", "client_id"),
                      ("kbroker.trace.topics", "topic")):
        value = config.get(key)
        if value:
            out[name] = list(value)
    return out
