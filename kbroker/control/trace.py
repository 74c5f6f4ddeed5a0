"""The protocol trace: every request and its response, decoded, as one JSON object a line.

A record holds the API, version, correlation id, client id and software, connection, timing
(``received_ms`` wall clock, ``duration_ms``), request and response sizes, the error codes the
response carries (``errors``: name -> count), the fault rule that fired if any, and the decoded
request and response bodies, with record payloads summarised (size, batches, records), never
dumped. Requests the broker refused before any handler (an API or version it does not serve)
are recorded with ``outcome: "refused"``.

Filters (any combination; each a list, a record passes when it matches one of each given):
``api`` (names), ``client_id``, ``topic``. The last records are kept in memory for
``GET /trace``; with a path they are also appended to that file.

:meth:`Tracer.negotiation` reports, per client, the ApiVersions it asked and what it was
answered, the versions it then used for each API against the highest it was offered, and
what it was refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kbroker.api.context import ClientConnection, RequestContext
from kbroker.api.registry import Handler
from kbroker.control.faults import FaultRule, RequestTargets, RuleError, api_key_of
from kbroker_protocol.api import encode_response
from kbroker_protocol.errors import ErrorCode, error_name
from kbroker_protocol.messages import API_NAMES
from kbroker_protocol.primitives import Message

if TYPE_CHECKING:
    from kbroker.control.host import ControlledBroker
    from kbroker.json_types import JsonObject, JsonValue

log = logging.getLogger("kbroker.trace")

KEEP = 10_000
_BATCH_HEADER = struct.Struct(">qi")  # base offset, batch length
_RECORD_COUNT_AT = 57  # offset of recordsCount in a v2 batch


def validate_filters(spec: Mapping[str, object]) -> dict[str, list[str]]:
    """Normalise trace filters (``api``, ``client_id``, ``topic``: a string or a list of them)."""
    out: dict[str, list[str]] = {}
    for name, value in spec.items():
        if name not in ("api", "client_id", "topic"):
            raise RuleError(name, "unknown filter (api, client_id or topic)")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise RuleError(name, f"expected a name or a list of names, got {value!r}")
        items = [v for item in values for v in item.split(",") if v]
        if name == "api":
            items = [API_NAMES[api_key_of(v)] for v in items]
        out[name] = items
    return out


def summarise_records(value: Any) -> JsonObject:
    """Size, batch and record counts of a record set (bytes), or the size of a file slice."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = memoryview(value)
        batches = records = 0
        pos = 0
        while pos + 12 <= len(data):
            _base, length = _BATCH_HEADER.unpack_from(data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break
            if pos + _RECORD_COUNT_AT + 4 <= len(data):
                records += struct.unpack_from(">i", data, pos + _RECORD_COUNT_AT)[0]
            batches += 1
            pos += 12 + length
        return {"bytes": len(data), "batches": batches, "records": records}
    try:
        return {"bytes": len(value)}
    except TypeError:
        return {"bytes": None}


def to_json(value: object, field: str = "") -> JsonValue:
    """A decoded message as JSON-ready data (record sets summarised)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    fields = getattr(value, "_FIELDS", None)
    if fields is not None:
        return {name: to_json(getattr(value, name), name) for name in fields}
    if isinstance(value, (list, tuple)):
        return [to_json(v, field) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if field == "records" or field.endswith("records") or not isinstance(value, (bytes, bytearray, memoryview)):
        return summarise_records(value)
    return {"bytes": len(value)}


def error_codes(value: object, out: dict[str, int] | None = None) -> dict[str, int]:
    """Every non-zero ``*error_code`` in a decoded response, counted by name."""
    if out is None:
        out = {}
    fields = getattr(value, "_FIELDS", None)
    if fields is not None:
        for name in fields:
            item = getattr(value, name)
            if name.endswith("error_code") and isinstance(item, int):
                if item:
                    key = error_name(item)
                    out[key] = out.get(key, 0) + 1
            elif isinstance(item, list) or getattr(item, "_FIELDS", None) is not None:
                error_codes(item, out)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, list) or getattr(item, "_FIELDS", None) is not None:
                error_codes(item, out)
    return out


class Tracer:
    def __init__(self, broker: ControlledBroker, path: str | None, filters: Mapping[str, list[str]]) -> None:
        self.broker = broker
        self.path = path
        self.filters = dict(filters)
        self.kept: deque[dict[str, object]] = deque(maxlen=KEEP)
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - held while tracing

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- recording ----------------------------------------------------------------------------

    def _passes(self, api: str, client_id: str | None, body: Message | None, filters: Mapping[str, list[str]]) -> bool:
        if "api" in filters and api not in filters["api"]:
            return False
        if "client_id" in filters and client_id not in filters["client_id"]:
            return False
        if "topic" in filters:
            if body is None:
                return False
            topics = RequestTargets(body, self.broker.image).topics
            if not any(t in topics for t in filters["topic"]):
                return False
        return True

    def _base(self, connection: ClientConnection, api_key: int, version: int, correlation_id: int | None,
              client_id: str | None) -> dict[str, object]:
        software = connection.client_software
        return {
            "received_ms": int(time.time() * 1000),
            "connection": connection.peer,
            "api": API_NAMES.get(api_key, f"api-{api_key}"),
            "api_key": api_key,
            "version": version,
            "correlation_id": correlation_id,
            "client_id": client_id,
            "client_software": None if software is None else {"name": software[0], "version": software[1]},
        }

    def _emit(self, record: dict[str, object]) -> None:
        self.kept.append(record)
        if self._file is not None:
            try:
                self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
                self._file.flush()
            except (OSError, TypeError, ValueError) as exc:
                log.error("cannot write the trace to %s: %s; trace file closed", self.path, exc)
                self.close()

    def wrap(self, ctx: RequestContext[object], body: Message, size: int, handler: Handler, rule: FaultRule | None
             ) -> Handler:
        header = ctx.header
        api_key = header.request_api_key
        if not self._passes(API_NAMES.get(api_key, ""), header.client_id, body, self.filters):
            return handler
        started = time.perf_counter()

        def finish(response: Any, failed: BaseException | None = None) -> None:
            # The client software is known once ApiVersions has been handled.
            record = self._base(ctx.connection, api_key, header.request_api_version, header.correlation_id,
                                header.client_id)
            record["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            record["request_bytes"] = size
            if rule is not None:
                record["fault"] = rule.id
            record["request"] = to_json(body)
            if failed is not None:
                record["outcome"] = "failed"
                record["failure"] = f"{type(failed).__name__}: {failed}"
            elif response is None:
                record["outcome"] = "no_response"
            else:
                record["outcome"] = "response"
                try:
                    parts = encode_response(header.correlation_id, api_key, header.request_api_version, response)
                    record["response_bytes"] = 4 + sum(len(p) for p in parts)
                except Exception:
                    record["response_bytes"] = None
                record["errors"] = error_codes(response)
                record["response"] = to_json(response)
            self._emit(record)

        async def finish_later(awaitable: Any) -> Any:
            try:
                response = await awaitable
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                finish(None, exc)
                raise
            finish(response)
            return response

        def run(ctx: Any, body: Any) -> Any:
            try:
                result = handler(ctx, body)
            except Exception as exc:
                finish(None, exc)
                raise
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return finish_later(result)
            finish(result)
            return result

        return run

    def closed(self, ctx: RequestContext[object], body: Message, size: int, rule: FaultRule) -> None:
        header = ctx.header
        if not self._passes(API_NAMES.get(header.request_api_key, ""), header.client_id, body, self.filters):
            return
        record = self._base(ctx.connection, header.request_api_key, header.request_api_version,
                            header.correlation_id, header.client_id)
        record.update(request_bytes=size, fault=rule.id, outcome="closed", request=to_json(body))
        self._emit(record)

    def refused(self, connection: ClientConnection, api_key: int, api_version: int, correlation_id: int | None,
                client_id: str | None, reason: str) -> None:
        if not self._passes(API_NAMES.get(api_key, ""), client_id, None,
                            {k: v for k, v in self.filters.items() if k != "topic"}):
            return  # (a refused request is not decoded: the topic filter does not apply)
        record = self._base(connection, api_key, api_version, correlation_id, client_id)
        record.update(outcome="refused", reason=reason)
        if api_key == 18 and "closed" not in reason:
            record["errors"] = {ErrorCode.UNSUPPORTED_VERSION.name: 1}
        self._emit(record)

    # -- reading ------------------------------------------------------------------------------

    def records(self, filters: Mapping[str, list[str]] | None = None, limit: int | None = None
                ) -> list[dict[str, object]]:
        filters = filters or {}
        out = []
        for record in self.kept:
            if "api" in filters and record["api"] not in filters["api"]:
                continue
            if "client_id" in filters and record["client_id"] not in filters["client_id"]:
                continue
            if "topic" in filters and not _record_names_topic(record, filters["topic"]):
                continue
            out.append(record)
        if limit is not None:
            out = out[-limit:] if limit else []
        return out

    def negotiation(self, client_ids: list[str] | None = None) -> list[dict[str, Any]]:
        return negotiation_report(self.kept, client_ids)


def _record_names_topic(record: Mapping[str, object], topics: list[str]) -> bool:
    text = json.dumps(record.get("request"))
    return any(json.dumps(t) in text for t in topics)


def negotiation_report(records: Iterable[Mapping[str, Any]], client_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Per client (id and software): ApiVersions asked and answered, versions used, refusals."""
    clients: dict[tuple[Any, Any], dict[str, Any]] = {}
    for record in records:
        if client_ids is not None and record.get("client_id") not in client_ids:
            continue
        key = (record.get("client_id"), record.get("connection"))
        c = clients.get(key)
        if c is None:
            c = clients[key] = {
                "client_id": record.get("client_id"), "connection": record.get("connection"),
                "client_software": None, "api_versions": [], "offered": {}, "used": {}, "refused": [],
            }
        if record.get("client_software"):
            c["client_software"] = record["client_software"]
        api, version = record["api"], record["version"]
        errors = record.get("errors") or {}
        if record.get("outcome") == "refused":
            c["refused"].append({"api": api, "version": version, "reason": record.get("reason")})
            if api == "ApiVersions":
                c["api_versions"].append({"asked": version, "error": "UNSUPPORTED_VERSION"})
            continue
        if api == "ApiVersions":
            response = record.get("response") or {}
            answered = {"asked": version, "error": error_name(response.get("error_code", 0) or 0)}
            keys = response.get("api_keys") or []
            answered["apis_offered"] = len(keys)
            c["api_versions"].append(answered)
            for item in keys:
                name = API_NAMES.get(item["api_key"], f"api-{item['api_key']}")
                c["offered"][name] = [item["min_version"], item["max_version"]]
        used = c["used"].setdefault(api, [])
        if version not in used:
            used.append(version)
        if "UNSUPPORTED_VERSION" in errors:
            c["refused"].append({"api": api, "version": version, "reason": "UNSUPPORTED_VERSION"})
    out = []
    for c in clients.values():
        below = {}
        for api, versions in c["used"].items():
            offered = c["offered"].get(api)
            if offered is not None and max(versions) < offered[1]:
                below[api] = {"used": max(versions), "offered_max": offered[1]}
        c["used_below_offered_max"] = below
        c["used"] = {api: sorted(v) for api, v in c["used"].items()}
        c.pop("offered")
        out.append(c)
    return out
