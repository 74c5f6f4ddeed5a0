"""Fault rules: make the broker answer chosen requests with an error, late, never, or not at all.

A :class:`FaultRule` matches requests by API (and optionally topic, partition, group,
transactional id, client id or connection) and, when it fires, applies an action:

- ``error``: answer with the request type's error response (the same builders Kafka's
  ``getErrorResponse`` uses, :mod:`kbroker.api.error_response`) carrying the chosen error code;
  the handler does not run;
- ``delay``: run the request ``delay_ms`` later (responses keep their order, so later requests
  on the connection wait behind it, as on a slow Kafka broker);
- ``drop``: run the request but send no response (the client's request times out);
- ``close``: close the connection instead of handling the request;
- ``throttle``: run the request and answer with ``throttle_time_ms`` set to ``throttle_ms``.

``delay_ms`` also delays an ``error``, ``drop`` or ``throttle``. When a rule fires is chosen by
``count`` (at most that many times), ``every`` (the n-th, 2n-th ... matching request),
``probability`` (with ``seed``, reproducible) and a window (``after_ms``/``duration_ms`` from the
rule's creation). Rules are consulted in creation order; the first that fires decides.

Every firing is logged (one line) and counted on its rule, and kept in a bounded history that a
test reads back to assert which faults its client met.

Nothing here runs unless a rule exists: the dispatcher consults the broker's request hooks only
when they are set (see :mod:`kbroker.control.hooks`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kbroker.api.context import RequestContext
from kbroker.api.error_response import builder_for
from kbroker.api.registry import Handler
from kbroker.api.services import ImageReading
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import API_NAMES
from kbroker_protocol.primitives import Message

if TYPE_CHECKING:
    from kbroker.json_types import JsonObject
    from kbroker.metadata.image import MetadataImage

log = logging.getLogger("kbroker.faults")

ACTIONS = ("error", "delay", "drop", "close", "throttle")
API_KEYS: dict[str, int] = {name.lower(): key for key, name in API_NAMES.items()}
HISTORY = 1000

_FIELDS = {
    "api", "action", "error", "count", "every", "probability", "seed", "delay_ms", "throttle_ms",
    "topic", "partition", "group", "transactional_id", "client_id", "connection", "after_ms",
    "duration_ms",
}


class RuleError(ValueError):
    """A fault rule that cannot be applied; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def api_key_of(value: object, field: str = "api") -> int:
    """An API key from its Kafka name (``"Produce"``, case-insensitive) or number."""
    if isinstance(value, bool):
        raise RuleError(field, f"expected an API name, got {value!r}")
    if isinstance(value, int):
        if value not in API_NAMES:
            raise RuleError(field, f"unknown API key {value}")
        return value
    if isinstance(value, str):
        key = API_KEYS.get(value.strip().lower())
        if key is None:
            raise RuleError(field, f"unknown API {value!r}")
        return key
    raise RuleError(field, f"expected an API name, got {value!r}")


def error_code_of(value: object, field: str = "error") -> int:
    """An error code from its Kafka name (``"NOT_LEADER_OR_FOLLOWER"``) or number."""
    if isinstance(value, bool):
        raise RuleError(field, f"expected an error name, got {value!r}")
    if isinstance(value, int):
        try:
            return int(ErrorCode(value))
        except ValueError:
            raise RuleError(field, f"unknown error code {value}") from None
    if isinstance(value, str):
        try:
            return int(ErrorCode[value.strip().upper()])
        except KeyError:
            raise RuleError(field, f"unknown error {value!r}") from None
    raise RuleError(field, f"expected an error name, got {value!r}")


def _int(spec: Mapping[str, object], field: str, minimum: int) -> int | None:
    value = spec.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(field, f"expected an integer, got {value!r}")
    if value < minimum:
        raise RuleError(field, f"must be >= {minimum}, got {value}")
    return value


def _str(spec: Mapping[str, object], field: str) -> str | None:
    value = spec.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RuleError(field, f"expected a non-empty string, got {value!r}")
    return value


class FaultRule:
    """One validated rule. Build with :meth:`from_spec`; all validation happens there."""

    def __init__(self, rule_id: int, spec: object, now: float) -> None:
        if not isinstance(spec, Mapping):
            raise RuleError("body", "expected a JSON object")
        unknown = sorted(set(spec) - _FIELDS)
        if unknown:
            raise RuleError(unknown[0], "unknown field")
        self.id = rule_id
        api = spec.get("api")
        # One API, several (a list: the rule matches any of them), or None: every API.
        self.api_keys: tuple[int, ...] | None
        if api in (None, "*"):
            self.api_keys = None
        elif isinstance(api, list):
            if not api:
                raise RuleError("api", "an empty list")
            self.api_keys = tuple(dict.fromkeys(api_key_of(a) for a in api))
        else:
            self.api_keys = (api_key_of(api),)
        self.api_key: int | None = self.api_keys[0] if self.api_keys and len(self.api_keys) == 1 else None
        self.error_code: int | None = None if spec.get("error") is None else error_code_of(spec["error"])
        action = spec.get("action")
        if action is None:
            action = "error" if self.error_code is not None else None
            if action is None:
                raise RuleError("action", f"missing: one of {', '.join(ACTIONS)} (or give an error)")
        if action not in ACTIONS:
            raise RuleError("action", f"expected one of {', '.join(ACTIONS)}, got {action!r}")
        self.action: str = action
        if action == "error":
            if self.error_code is None:
                raise RuleError("error", "required for action error")
            if self.api_keys is None:
                raise RuleError("api", "required for action error (the error response is the API's)")
            for key in self.api_keys:
                if builder_for(key) is None:
                    raise RuleError("api", f"{API_NAMES[key]} has no error response in kbroker")
        elif self.error_code is not None:
            raise RuleError("error", f"only for action error, not {action}")
        self.count = _int(spec, "count", 1)
        self.every = _int(spec, "every", 1)
        self.delay_ms = _int(spec, "delay_ms", 0)
        self.throttle_ms = _int(spec, "throttle_ms", 0)
        if action == "delay" and self.delay_ms is None:
            raise RuleError("delay_ms", "required for action delay")
        if action == "throttle" and self.throttle_ms is None:
            raise RuleError("throttle_ms", "required for action throttle")
        if self.throttle_ms is not None and action not in ("throttle", "error"):
            raise RuleError("throttle_ms", f"only for actions throttle and error, not {action}")
        if action == "close" and self.delay_ms:
            raise RuleError("delay_ms", "not for action close")
        probability = spec.get("probability")
        if probability is not None:
            if isinstance(probability, bool) or not isinstance(probability, (int, float)):
                raise RuleError("probability", f"expected a number, got {probability!r}")
            if not 0.0 < probability <= 1.0:
                raise RuleError("probability", f"must be in (0, 1], got {probability}")
        self.probability: float | None = None if probability is None else float(probability)
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise RuleError("seed", f"expected an integer, got {seed!r}")
        if seed is not None and self.probability is None:
            raise RuleError("seed", "only with probability")
        self.seed: int | None = seed
        self._random = random.Random(seed)
        self.topic = _str(spec, "topic")
        self.partition = _int(spec, "partition", 0)
        if self.partition is not None and self.topic is None:
            raise RuleError("partition", "needs a topic")
        self.group = _str(spec, "group")
        self.transactional_id = _str(spec, "transactional_id")
        self.client_id = _str(spec, "client_id")
        self.connection = _str(spec, "connection")
        after_ms = _int(spec, "after_ms", 0)
        duration_ms = _int(spec, "duration_ms", 1)
        self.created = now
        self.starts = now + (after_ms or 0) / 1000
        self.ends = None if duration_ms is None else self.starts + duration_ms / 1000
        self.after_ms, self.duration_ms = after_ms, duration_ms
        self.matched = 0  # requests that matched the filters (fired or not)
        self.fired = 0
        self._needs_targets = bool(self.topic or self.group or self.transactional_id)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def matches(self, api_key: int, ctx: RequestContext[object], body: Message, image: MetadataImage | None = None) -> bool:
        if self.api_keys is not None and api_key not in self.api_keys:
            return False
        if self.client_id is not None and ctx.header.client_id != self.client_id:
            return False
        if self.connection is not None and ctx.connection.peer != self.connection:
            return False
        if self._needs_targets:
            targets = RequestTargets(body, image)
            if self.topic is not None and not targets.has_partition(self.topic, self.partition):
                return False
            if self.group is not None and self.group not in targets.groups:
                return False
            if self.transactional_id is not None and self.transactional_id not in targets.transactional_ids:
                return False
        return True

    def fires(self, now: float) -> bool:
        """Called for a matching request: counts it and decides whether the rule fires."""
        if self.exhausted or now < self.starts or (self.ends is not None and now >= self.ends):
            return False
        self.matched += 1
        if self.every is not None and self.matched % self.every:
            return False
        if self.probability is not None and self._random.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "api": (None if self.api_keys is None else API_NAMES[self.api_keys[0]] if len(self.api_keys) == 1
                    else [API_NAMES[k] for k in self.api_keys]),
            "action": self.action,
        }
        if self.error_code is not None:
            out["error"] = ErrorCode(self.error_code).name
        for name in ("count", "every", "probability", "seed", "delay_ms", "throttle_ms", "topic", "partition",
                     "group", "transactional_id", "client_id", "connection", "after_ms", "duration_ms"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["matched"] = self.matched
        out["fired"] = self.fired
        out["exhausted"] = self.exhausted
        return out


class RequestTargets:
    """The topics, partitions, groups and transactional ids a request names (any API)."""

    __slots__ = ("topics", "groups", "transactional_ids")

    _TOPIC_LISTS = ("topic_data", "topics", "v3_and_below_topics")
    _PARTITION_LISTS = ("partition_data", "partitions", "partition_indexes")
    _PARTITION_INDEX = ("index", "partition", "partition_index")

    def __init__(self, body: Message, image: MetadataImage | None = None) -> None:
        # topic name -> partitions named (None: the whole topic, or not given)
        self.topics: dict[str, set[int] | None] = {}
        self.groups: set[str] = set()
        self.transactional_ids: set[str] = set()
        fields = getattr(body, "_FIELDS", ())
        for attr in self._TOPIC_LISTS:
            if attr in fields:
                for item in getattr(body, attr) or ():
                    self._add_topic(item, image)
        def field(name: str) -> Any:
            """A field of whichever request this is, by name (None when it has no such field)."""
            return getattr(body, name) if name in fields else None

        for name in field("topic_names") or ():
            self.topics.setdefault(name, None)
        if group_id := field("group_id"):
            self.groups.add(group_id)
        for attr in ("groups", "groups_names", "group_ids"):
            for item in field(attr) or ():
                name = item if isinstance(item, str) else getattr(item, "group_id", None)
                if name:
                    self.groups.add(name)
        if transactional_id := field("transactional_id"):
            self.transactional_ids.add(transactional_id)
        self.transactional_ids.update(field("transactional_ids") or ())
        if "key_type" in fields:  # FindCoordinator: 0 group, 1 transaction
            keys = list(field("coordinator_keys") or ())
            if key := field("key"):
                keys.append(key)
            (self.groups if field("key_type") == 0 else self.transactional_ids).update(keys)

    def _add_topic(self, item: Any, image: MetadataImage | None) -> None:
        if isinstance(item, str):
            self.topics.setdefault(item, None)
            return
        fields = getattr(item, "_FIELDS", ())
        name = None
        for attr in ("name", "topic"):
            if attr in fields and getattr(item, attr):
                name = getattr(item, attr)
                break
        if name is None and "topic_id" in fields and image is not None:
            topic = image.topic_by_id(item.topic_id)
            name = topic.name if topic is not None else None
        if name is None:
            return
        partitions: set[int] | None = None
        for attr in self._PARTITION_LISTS:
            if attr in fields:
                partitions = set()
                for p in getattr(item, attr) or ():
                    if isinstance(p, int):
                        partitions.add(p)
                        continue
                    for index_attr in self._PARTITION_INDEX:
                        if index_attr in getattr(p, "_FIELDS", ()):
                            partitions.add(getattr(p, index_attr))
                            break
                break
        known = self.topics.get(name)
        if name in self.topics and known is None:
            return
        if partitions is None:
            self.topics[name] = None
        else:
            self.topics[name] = (known or set()) | partitions

    def has_partition(self, topic: str, partition: int | None) -> bool:
        if topic not in self.topics:
            return False
        if partition is None:
            return True
        named = self.topics[topic]
        return named is None or partition in named


class FaultInjector:
    """The broker's fault rules and the record of their firings."""

    def __init__(self, on_change: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rules: dict[int, FaultRule] = {}
        self.history: deque[JsonObject] = deque(maxlen=HISTORY)
        self.fired_total = 0
        self._next_id = 1
        self._on_change = on_change
        self._clock = clock

    def add(self, spec: Mapping[str, object]) -> FaultRule:
        """Validate ``spec`` and add the rule (nothing is added when it is invalid)."""
        rule = FaultRule(self._next_id, spec, self._clock())
        self._next_id += 1
        self.rules[rule.id] = rule
        log.info("fault %d added: %s", rule.id, _describe_short(rule))
        self._changed()
        return rule

    def add_many(self, specs: Sequence[object]) -> list[FaultRule]:
        """Add several rules, all or none."""
        now = self._clock()
        rules = []
        for i, spec in enumerate(specs):
            try:
                rules.append(FaultRule(self._next_id + i, spec, now))
            except RuleError as exc:
                raise RuleError(f"[{i}].{exc.field}", str(exc).split(": ", 1)[1]) from None
        for rule in rules:
            self.rules[rule.id] = rule
            log.info("fault %d added: %s", rule.id, _describe_short(rule))
        self._next_id += len(rules)
        self._changed()
        return rules

    def remove(self, rule_id: int) -> bool:
        rule = self.rules.pop(rule_id, None)
        if rule is not None:
            log.info("fault %d removed (fired %d times)", rule_id, rule.fired)
            self._changed()
        return rule is not None

    def clear(self) -> int:
        n = len(self.rules)
        self.rules.clear()
        self.history.clear()
        if n:
            log.info("all %d faults removed", n)
        self._changed()
        return n

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def select(self, ctx: RequestContext[object], body: Message, image: MetadataImage | None = None) -> FaultRule | None:
        """The rule that fires for this request, if any (records the firing); ``image`` names the
        topics a request gives by id."""
        header = ctx.header
        api_key = header.request_api_key
        now = self._clock()
        for rule in self.rules.values():
            if rule.matches(api_key, ctx, body, image) and rule.fires(now):
                self._record(rule, ctx)
                return rule
        return None

    def _record(self, rule: FaultRule, ctx: RequestContext[object]) -> None:
        header = ctx.header
        api = API_NAMES.get(header.request_api_key, str(header.request_api_key))
        event: JsonObject = {
            "rule": rule.id, "api": api, "version": header.request_api_version,
            "correlation_id": header.correlation_id, "client_id": header.client_id,
            "connection": ctx.connection.peer, "action": rule.action, "time_ms": int(time.time() * 1000),
        }
        if rule.error_code is not None:
            event["error"] = ErrorCode(rule.error_code).name
        self.history.append(event)
        self.fired_total += 1
        log.info("fault %d fired (%d/%s): %s v%d correlation %d from %s client %r: %s%s", rule.id, rule.fired,
                 rule.count if rule.count is not None else "-", api, header.request_api_version,
                 header.correlation_id, ctx.connection.peer, header.client_id, rule.action,
                 f" {event['error']}" if "error" in event else "")

    def wrap(self, rule: FaultRule, ctx: RequestContext[object], body: Message, handler: Handler) -> Handler | None:
        """The handler that applies ``rule`` to this request; None: close the connection."""
        action = rule.action
        if action == "close":
            ctx.connection.close()
            return None
        delay = (rule.delay_ms or 0) / 1000
        throttle = rule.throttle_ms

        # (called with the RequestContext given to intercept; typed as a Handler's context is)
        def respond(ctx: Any, body: Any) -> Any:
            if action == "error":
                assert rule.error_code is not None  # (the action is "error" exactly when a code is set)
                build = builder_for(ctx.header.request_api_key)
                assert build is not None  # (checked when the rule was made)
                response = build(body, ctx.api_version, rule.error_code)
                _set_throttle(response, throttle)
                if rule.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER and ctx.header.request_api_key == 0:
                    _leader_hint(response, ctx)
                return response
            return handler(ctx, body)

        async def run(ctx: Any, body: Any) -> Any:
            if delay:
                await asyncio.sleep(delay)
            response = respond(ctx, body)
            if asyncio.iscoroutine(response) or isinstance(response, asyncio.Future):
                response = await response
            if action == "drop":
                return None
            if action == "throttle":
                _set_throttle(response, throttle)
            return response

        if not delay and action == "error":
            return respond
        return run


def _leader_hint(response: Any, ctx: RequestContext[ImageReading]) -> None:
    """Produce v10+ (KIP-951): NOT_LEADER_OR_FOLLOWER carries the partition's current leader and
    epoch, and the leader's endpoint, as Kafka's answer does after a leadership change."""
    if response is None or ctx.api_version < 10:
        return
    broker = ctx.broker
    image = broker.image
    leaders: set[int] = set()
    for topic in response.responses:
        state = image.topic(topic.name) if topic.name else image.topic_by_id(topic.topic_id)
        for part in topic.partition_responses:
            p = state.partitions.get(part.index) if state is not None else None
            if p is None:
                continue
            hint = type(part).LeaderIdAndEpoch(leader_id=p.leader, leader_epoch=p.leader_epoch)
            part.current_leader = hint
            leaders.add(p.leader)
    endpoints = []
    listener = ctx.connection.endpoint.listener
    for node_id in sorted(leaders):
        registration = image.brokers.get(node_id)
        if registration is not None and listener in registration.endpoints:
            host, port, _proto = registration.endpoints[listener]
            endpoints.append(type(response).NodeEndpoint(node_id=node_id, host=host, port=port,
                                                         rack=registration.rack))
    response.node_endpoints = endpoints


def _set_throttle(response: Any, throttle_ms: int | None) -> None:
    if throttle_ms is None or response is None:
        return
    # a generated response with the field, or an answer sent encoded that can still set it
    # (kbroker.api.metadata.EncodedMetadata)
    if "throttle_time_ms" in getattr(response, "_FIELDS", ()) or "throttle_time_ms" in getattr(
            type(response), "__slots__", ()):
        response.throttle_time_ms = throttle_ms


def _describe_short(rule: FaultRule) -> str:
    d = rule.describe()
    for key in ("id", "matched", "fired", "exhausted"):
        d.pop(key, None)
    return " ".join(f"{k}={v}" for k, v in d.items())
