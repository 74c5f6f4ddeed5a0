"""The control endpoint: HTTP/1.1 + JSON on loopback, for tests written in any language.

Off unless ``kbroker.control.listeners`` names at least one ``host:port`` (``http://`` prefix
allowed, port 0 for an ephemeral one). It binds only loopback addresses and refuses connections
from elsewhere (403) unless ``kbroker.control.allow.remote=true``; it never shares a Kafka
listener's port. One request per connection (``Connection: close``); bodies are JSON objects.

Routes (all answers are JSON objects; errors are ``{"error": message, "field": name}``)::

    GET    /status
    POST   /faults              {"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 1}
                                -> {"id": 1, "rule": {...}}; a list of rules -> {"ids": [...], ...}
    GET    /faults              -> {"faults": [{... "matched": n, "fired": n}]}
    GET    /faults/fired        -> {"fired": [{"rule": 1, "api": "Produce", ...}]}  (?rule=1)
    DELETE /faults/{id}         -> {"deleted": 1}   (404 if there is no such rule)
    DELETE /faults              -> {"deleted": n}
    POST   /pause, /resume      serving paused (requests queue) / resumed
    POST   /disk                {"full": true}: appends fail with ENOSPC (KAFKA_STORAGE_ERROR) until false
    POST   /leadership          {"topic": "t", "partition": 0}: a new leader epoch (re-elected here);
                                the next Produce to it gets NOT_LEADER_OR_FOLLOWER once
    POST   /coordinator         {"group": "g"} or {"transactional_id": "t"}: the next request to
                                that coordinator gets NOT_COORDINATOR once
    POST   /clock/advance       {"ms": 45000}  (409 unless the broker runs a manual clock)
                                -> {"now_ms": ..., "timers_run": n}
    GET    /clock               {"clock": "manual"|"real", "now_ms": ..., "advanced_ms": ...,
                                 "pending_timers": n}
    POST   /reset               {"connections": "keep" | "drop"}
    POST   /snapshot            {"path": "/dir"}
    POST   /trace               {"path": "/file.jsonl", "api": [...], "client_id": [...], "topic": [...]}
    DELETE /trace
    GET    /trace               ?api=Produce&client_id=x&topic=t&limit=n -> {"records": [...]}
    GET    /negotiation         ?client_id=x -> the clients' version negotiation

Bad input (unknown route field, API or error name, negative count, a body that is not JSON)
gets a 400 naming the field, and nothing is applied.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from kbroker.control.faults import RuleError
from kbroker.controller.errors import ControllerError
from kbroker.server.http import HttpError, HttpService, Response, is_loopback, parse_listener

if TYPE_CHECKING:
    from kbroker.json_types import JsonValue

__all__ = ["ControlServer", "HttpError", "is_loopback", "parse_listener"]

log = logging.getLogger("kbroker.control")


def _json(status: int, payload: object) -> Response:
    return status, "application/json", json.dumps(payload).encode()


class ControlServer(HttpService):
    key = "kbroker.control.listeners"
    name = "control"

    def __init__(self, plane: Any, listeners: list[str], *, allow_remote: bool = False) -> None:
        super().__init__(listeners, loopback_only=not allow_remote)
        self.plane = plane
        self.allow_remote = allow_remote

    def remote_hint(self) -> str:
        return " (set kbroker.control.allow.remote=true to serve it elsewhere)"

    async def start(self, reserved_ports: set[int] | None = None) -> None:
        kafka_ports = {port for _host, port in self.plane.broker.bound.values()}
        await super().start(kafka_ports | (reserved_ports or set()))

    def error(self, status: int, message: str, field: str | None = None) -> Response:
        payload: dict[str, str] = {"error": message}
        if field is not None:
            payload["field"] = field
        return _json(status, payload)

    async def respond(self, method: str, target: str, body: bytes) -> Response:
        try:
            status, payload = await self._route(method, target, body)
        except RuleError as exc:
            status, payload = 400, {"error": str(exc), "field": exc.field}
        except ControllerError as exc:  # a metadata change on a node that is not the active controller
            status, payload = 409, {"error": exc.message or exc.code.name, "code": exc.code.name}
        return _json(status, payload)

    # -- routes -------------------------------------------------------------------------------

    async def _route(self, method: str, target: str, body: bytes) -> tuple[int, object]:
        url = urlsplit(target)
        path = [unquote(p) for p in url.path.strip("/").split("/") if p]
        query = {k: v for k, v in parse_qs(url.query).items()}
        plane = self.plane
        key = "/".join(path[:1])
        handlers: dict[tuple[str, str], Callable[[list[str], dict[str, list[str]], bytes],
                                                 Awaitable[tuple[int, object]] | tuple[int, object]]] = {
            ("GET", "status"): lambda p, q, b: (200, plane.status()),
            ("POST", "faults"): self._post_faults,
            ("GET", "faults"): self._get_faults,
            ("DELETE", "faults"): self._delete_faults,
            ("POST", "pause"): lambda p, q, b: (200, _do(plane.pause, {"paused": True})),
            ("POST", "resume"): lambda p, q, b: (200, _do(plane.resume, {"paused": False})),
            ("POST", "disk"): self._post_disk,
            ("POST", "leadership"): self._post_leadership,
            ("POST", "coordinator"): self._post_coordinator,
            ("POST", "clock"): self._post_clock,
            ("GET", "clock"): self._get_clock,
            ("POST", "reset"): self._post_reset,
            ("POST", "snapshot"): self._post_snapshot,
            ("POST", "trace"): self._post_trace,
            ("DELETE", "trace"): lambda p, q, b: (200, _do(plane.stop_trace, {"trace": False})),
            ("GET", "trace"): self._get_trace,
            ("GET", "negotiation"): self._get_negotiation,
        }
        handler = handlers.get((method, key))
        if handler is None:
            if any(k == key for _m, k in handlers):
                raise HttpError(405, f"{method} not allowed on /{key}")
            raise HttpError(404, f"no such endpoint: {url.path}")
        result = handler(path[1:], query, body)
        if isinstance(result, tuple):  # a synchronous route's answer
            return result
        return await result

    def _post_faults(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        if rest:
            raise HttpError(404, f"no such endpoint: /faults/{'/'.join(rest)}")
        spec = _json_body(body, required=True)
        rules = self.plane.add_faults(spec)
        if isinstance(spec, list):
            return 200, {"ids": [r["id"] for r in rules], "rules": rules}
        return 200, {"id": rules[0]["id"], "rule": rules[0]}

    def _get_faults(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        if rest == ["fired"]:
            rule = _int_query(query, "rule")
            return 200, {"fired": self.plane.fired(rule)}
        if len(rest) == 1:
            rule_id = _rule_id(rest[0])
            for rule in self.plane.list_faults():
                if rule["id"] == rule_id:
                    return 200, rule
            raise HttpError(404, f"no fault rule {rule_id}", "id")
        if rest:
            raise HttpError(404, "no such endpoint")
        return 200, {"faults": self.plane.list_faults()}

    def _delete_faults(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        if not rest:
            return 200, {"deleted": self.plane.clear_faults()}
        if len(rest) != 1:
            raise HttpError(404, "no such endpoint")
        rule_id = _rule_id(rest[0])
        if not self.plane.remove_fault(rule_id):
            raise HttpError(404, f"no fault rule {rule_id}", "id")
        return 200, {"deleted": rule_id}

    def _post_disk(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        spec = _json_body(body, required=True)
        if not isinstance(spec, dict):
            raise HttpError(400, "expected a JSON object", "body")
        _check_fields(spec, {"full"})
        full = spec.get("full")
        if not isinstance(full, bool):
            raise HttpError(400, f"expected true or false, got {full!r}", "full")
        self.plane.set_disk_full(full)
        return 200, {"disk_full": full}

    async def _post_leadership(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        spec = _json_body(body, required=True)
        if not isinstance(spec, dict):
            raise HttpError(400, "expected a JSON object", "body")
        _check_fields(spec, {"topic", "partition"})
        topic, partition = spec.get("topic"), spec.get("partition")
        if not isinstance(topic, str) or not topic:
            raise HttpError(400, "expected a topic name", "topic")
        if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
            raise HttpError(400, f"expected a partition index, got {partition!r}", "partition")
        try:
            return 200, await self.plane.move_leadership(topic, partition)
        except KeyError as exc:
            raise HttpError(404, str(exc.args[0]), "topic") from None

    def _post_coordinator(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        spec = _json_body(body, required=True)
        if not isinstance(spec, dict):
            raise HttpError(400, "expected a JSON object", "body")
        _check_fields(spec, {"group", "transactional_id"})
        for name in ("group", "transactional_id"):
            if name in spec and (not isinstance(spec[name], str) or not spec[name]):
                raise HttpError(400, f"expected a non-empty string, got {spec[name]!r}", name)
        return 200, self.plane.move_coordinator(group=spec.get("group"),
                                                transactional_id=spec.get("transactional_id"))

    def _post_clock(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        if rest != ["advance"]:
            raise HttpError(404, "no such endpoint: use /clock/advance")
        spec = _json_body(body, required=True)
        if not isinstance(spec, dict):
            raise HttpError(400, "expected a JSON object", "body")
        _check_fields(spec, {"ms"})
        ms = spec.get("ms")
        if isinstance(ms, bool) or not isinstance(ms, int):
            raise HttpError(400, f"expected an integer number of milliseconds, got {ms!r}", "ms")
        if ms < 0:
            raise HttpError(400, f"must be >= 0, got {ms}", "ms")
        clock = getattr(self.plane.broker, "clock", None)
        if clock is None or not getattr(clock, "manual", False):
            raise HttpError(409, "the broker's clock is not manual (start it with kbroker.clock=manual)")
        ran = clock.advance(ms)
        return 200, {"now_ms": clock.now_ms(), "timers_run": ran}

    def _get_clock(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        if rest:
            raise HttpError(404, "no such endpoint: use /clock")
        clock = getattr(self.plane.broker, "clock", None)
        if clock is None:
            return 200, {"clock": "real", "now_ms": int(time.time() * 1000)}
        return 200, {"clock": "manual", "now_ms": clock.now_ms(), "advanced_ms": clock.advanced_ms,
                     "pending_timers": clock.pending}

    async def _post_reset(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        spec = _json_body(body, required=False) or {}
        if not isinstance(spec, dict):
            raise HttpError(400, "expected a JSON object", "body")
        _check_fields(spec, {"connections"})
        connections = spec.get("connections", "keep")
        if connections not in ("keep", "drop"):
            raise HttpError(400, f"expected keep or drop, got {connections!r}", "connections")
        reset = getattr(self.plane, "reset", None)
        if reset is None:
            raise HttpError(404, "reset is not available in this build")
        return 200, await reset(drop_connections=connections == "drop")

    async def _post_snapshot(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        spec = _json_body(body, required=True)
        if not isinstance(spec, dict):
            raise HttpError(400, "expected a JSON object", "body")
        _check_fields(spec, {"path"})
        path = spec.get("path")
        if not isinstance(path, str) or not path:
            raise HttpError(400, "expected a directory path", "path")
        snapshot = getattr(self.plane, "snapshot", None)
        if snapshot is None:
            raise HttpError(404, "snapshot is not available in this build")
        try:
            return 200, await snapshot(path)
        except (OSError, ValueError) as exc:
            raise HttpError(400, str(exc), "path") from None

    def _post_trace(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        from kbroker.control.trace import validate_filters

        spec = _json_body(body, required=False) or {}
        if not isinstance(spec, dict):
            raise HttpError(400, "expected a JSON object", "body")
        _check_fields(spec, {"path", "api", "client_id", "topic"})
        path = spec.get("path")
        if path is not None and (not isinstance(path, str) or not path):
            raise HttpError(400, "expected a file path", "path")
        filters = validate_filters({k: v for k, v in spec.items() if k != "path"})
        if path is not None:
            try:
                open(path, "a").close()  # noqa: SIM115 - checks the file can be written before tracing
            except OSError as exc:
                raise HttpError(400, f"cannot write {path}: {exc.strerror}", "path") from None
        self.plane.start_trace(path, filters)
        return 200, {"trace": True, "path": path}

    def _get_trace(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        from kbroker.control.trace import validate_filters

        tracer = self.plane.tracer
        if tracer is None:
            raise HttpError(409, "the trace is off: POST /trace (or start with --trace) first")
        limit = _int_query(query, "limit")
        filters = validate_filters({k: v for k, v in query.items() if k != "limit"})
        return 200, {"records": tracer.records(filters, limit)}

    def _get_negotiation(self, rest: list[str], query: dict[str, list[str]], body: bytes) -> tuple[int, object]:
        tracer = self.plane.tracer
        if tracer is None:
            raise HttpError(409, "the trace is off: POST /trace (or start with --trace) first")
        _check_fields(query, {"client_id"})
        client_ids = query.get("client_id")
        return 200, {"clients": tracer.negotiation(client_ids)}


def _do(fn: Callable[[], object], result: object) -> object:
    fn()
    return result


def _json_body(body: bytes, *, required: bool) -> JsonValue:
    if not body.strip():
        if required:
            raise HttpError(400, "a JSON body is required", "body")
        return None
    try:
        value: JsonValue = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the body is not JSON: {exc}", "body") from None
    return value


def _check_fields(spec: Mapping[str, object], allowed: set[str]) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r}", unknown[0])


def _rule_id(text: str) -> int:
    if not text.isdigit():
        raise HttpError(400, f"expected a rule id, got {text!r}", "id")
    return int(text)


def _int_query(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    if not values[-1].isdigit():
        raise HttpError(400, f"expected a non-negative integer, got {values[-1]!r}", name)
    return int(values[-1])
