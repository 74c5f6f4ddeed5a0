"""The client scenarios of scripts/record_golden.py: how each client (kafka-python, aiokafka,
confluent-kafka) produces its batch and consumes it in a group, and a recording of one client against
the look-alike broker (golden_recorder.Recorder)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from golden_recorder import GOLDEN, Recorder, configured

# --- client scenarios -----------------------------------------------------------------------------


def run_kafka_python(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=cfg["producer_client_id"],
        acks="all",
        compression_type=cfg["codec"],
        linger_ms=500,
    )
    for r in cfg["records"]:
        producer.send(
            cfg["topic"],
            key=r["key"].encode(),
            value=r["value"].encode(),
            headers=[(k, v.encode()) for k, v in r["headers"]],
        )
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=cfg["consumer_client_id"],
        group_id=cfg["group_id"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    consumer.subscribe([cfg["topic"]])
    got: list[tuple[bytes, bytes]] = []
    for _ in range(100):
        for records in consumer.poll(timeout_ms=200).values():
            got.extend((r.key, r.value) for r in records)
        if len(got) >= len(cfg["records"]):
            break
    consumer.commit()
    consumer.close()
    return got


async def _run_aiokafka(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=cfg["producer_client_id"],
        acks=1,
        compression_type=cfg["codec"],
        linger_ms=500,
    )
    await producer.start()
    try:
        batch = producer.create_batch()
        for r in cfg["records"]:
            batch.append(
                key=r["key"].encode(),
                value=r["value"].encode(),
                timestamp=None,
                headers=[(k, v.encode()) for k, v in r["headers"]],
            )
        fut = await producer.send_batch(batch, cfg["topic"], partition=0)
        await fut
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        cfg["topic"],
        bootstrap_servers=bootstrap,
        client_id=cfg["consumer_client_id"],
        group_id=cfg["group_id"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(100):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got.extend((r.key, r.value) for r in records)
            if len(got) >= len(cfg["records"]):
                break
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def run_aiokafka(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return asyncio.run(_run_aiokafka(bootstrap, cfg))


def run_confluent(bootstrap: str, cfg: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    from confluent_kafka import Consumer, Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": cfg["producer_client_id"],
            "acks": "all",
            "compression.type": cfg["codec"],
            "linger.ms": 500,
        }
    )
    for r in cfg["records"]:
        producer.produce(
            cfg["topic"],
            key=r["key"].encode(),
            value=r["value"].encode(),
            headers=[(k, v.encode()) for k, v in r["headers"]],
            partition=0,
        )
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": cfg["consumer_client_id"],
            "group.id": cfg["group_id"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([cfg["topic"]])
    got: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(200):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            got.append((msg.key(), msg.value()))
            if len(got) >= len(cfg["records"]):
                break
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


RUNNERS = {"kafka-python": run_kafka_python, "aiokafka": run_aiokafka, "confluent-kafka": run_confluent}


def record(client: str) -> list[Path]:
    out_dir = GOLDEN / client
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        old.unlink()
    rec = Recorder(client, out_dir)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(rec.serve(ready, stop)), daemon=True)
    thread.start()
    ready.wait(10)
    cfg = configured(client)
    try:
        got = RUNNERS[client](f"127.0.0.1:{rec.port}", cfg)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    want = [(r["key"].encode(), r["value"].encode()) for r in cfg["records"]]
    if got != want:
        raise SystemExit(f"{client}: consumed {got!r}, expected {want!r}")
    return sorted(rec.saved.values())
