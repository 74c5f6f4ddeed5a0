"""Helpers of the console tests: JSON calls as the console's pages make them, and the records and
committed offsets the pages are to show (written through the wire codec and confluent-kafka)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from confluent_kafka import Consumer

from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import Record, build_batch
from tests.integration.waiting import wait_until
from tests.integration.wire import Wire

PAGE_HEADERS = {"X-Kbroker-Console": "1", "Content-Type": "application/json"}


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    """(status, decoded JSON or text, response headers)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if method == "POST" and headers is None:
        headers = PAGE_HEADERS
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text, hdrs = resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, text, hdrs = exc.code, exc.read().decode(), dict(exc.headers)
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def get(base: str, path: str) -> Any:
    status, data, _ = call(base + path)
    assert status == 200, (path, status, data)
    return data


def post(base: str, path: str, body: Any) -> Any:
    status, data, _ = call(base + path, "POST", body)
    assert status == 200, (path, status, data)
    return data


def produce_raw(bootstrap: str, topic: str, partition: int, records: list[Record]) -> int:
    """Records exactly as given (bytes that are not UTF-8, timestamps), through the wire codec."""
    wire = Wire(bootstrap)
    try:
        Req = REQUESTS[0]
        data = Req.TopicProduceData(name=topic, partition_data=[Req.TopicProduceData.PartitionProduceData(
            index=partition, records=build_batch(records))])
        resp = wire.call(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[data])
        part = resp.responses[0].partition_responses[0]
        assert part.error_code == 0
        return part.base_offset
    finally:
        wire.close()


def consume_and_commit(bootstrap: str, group: str, topic: str, count: int) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        got = 0

        def poll() -> bool:
            nonlocal got
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got += 1
            return got >= count
        wait_until(poll, message=f"{count} records consumed")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def page_call(base: str, path: str, body: Any = None, cookie: str | None = None) -> tuple[int, Any, Any]:
    """(status, JSON, response headers); POST when there is a body."""
    headers = dict(PAGE_HEADERS) if body is not None else {}
    if cookie:
        headers["Cookie"] = cookie
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="POST" if body is not None else "GET",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def login(base: str, user: str, password: str, mechanism: str | None = None) -> str:
    """Log in to the console; the session cookie to send with later calls."""
    body = {"username": user, "password": password} | ({"mechanism": mechanism} if mechanism else {})
    status, data, headers = page_call(base, "/api/login", body)
    assert status == 200, data
    cookie = headers["Set-Cookie"]
    return cookie.split(";")[0]
