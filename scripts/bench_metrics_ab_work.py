"""The work scripts/bench_metrics_ab.py gives every arm in a round: the prepared small and pipelined
requests and the confluent-kafka records, sent in bursts, with the broker's CPU read around each phase."""

from __future__ import annotations

import os
import time

from bench_metrics import cpu_seconds
from bench_metrics_ab_arm import Arm
from bench_metrics_ab_frames import RAW_PER_FETCH, RAW_RECORDS, RECORD, fetch_frame, produce_frame
from confluent_kafka import KafkaError, TopicPartition

from kbroker_protocol.records import Record


class Work:
    """The prepared requests and payloads every arm is sent."""

    def __init__(self, small: int, raw: int, records: int) -> None:
        self.small, self.raw, self.records = small, raw, records
        ts = 1_700_000_000_000
        self.small_produce = produce_frame("small", [Record(value=b"v" * 100, timestamp=ts + i) for i in range(10)])
        self.small_fetch = fetch_frame("small", 0, 65536)
        self.raw_produce = produce_frame("raw", [Record(value=os.urandom(RECORD), timestamp=ts + i)
                                                 for i in range(RAW_RECORDS)])
        self.raw_batch_bytes = len(self.raw_produce)  # about: the frame holds one batch
        self.payloads = [os.urandom(RECORD) for _ in range(64)]

    def burst(self, arm: Arm) -> dict[str, float]:
        """Every phase once on one arm: CPU s and wall s per phase, and the work done."""
        row: dict[str, float] = {}
        arm.burst_begins()
        try:
            self._burst(arm, row)
        finally:
            arm.burst_ends()
        return row

    def _burst(self, arm: Arm, row: dict[str, float]) -> None:
        if self.small:
            row["small_produce_cpu"], row["small_produce_s"], _ = arm.pipelined([self.small_produce] * self.small, 64,
                                                                                True)
            row["small_fetch_cpu"], row["small_fetch_s"], _ = arm.pipelined([self.small_fetch] * self.small, 64, False)
        if self.raw:
            cpu, wall, _ = arm.pipelined([self.raw_produce] * self.raw, 16, True)
            row["raw_produce_cpu"], row["raw_produce_s"] = cpu, wall
            max_bytes = RAW_PER_FETCH * self.raw_batch_bytes
            fetches = [fetch_frame("raw", arm.raw_end + i * RAW_PER_FETCH * RAW_RECORDS, max_bytes)
                       for i in range((self.raw + RAW_PER_FETCH - 1) // RAW_PER_FETCH)]
            cpu, wall, got = arm.pipelined(fetches, 4, False, short=self.raw_batch_bytes // 2)
            if got < self.raw * (self.raw_batch_bytes - 200):
                raise SystemExit(f"fetched {got} bytes from broker {arm.name}, fewer than produced")
            row["raw_fetch_cpu"], row["raw_fetch_s"] = cpu, wall
            arm.raw_end += self.raw * RAW_RECORDS
        if self.records:
            self.client_burst(arm, row)

    def client_burst(self, arm: Arm, row: dict[str, float]) -> None:
        assert arm.producer is not None and arm.consumer is not None
        producer, consumer = arm.producer, arm.consumer
        errors: list[object] = []

        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(err)

        cpu0, t0 = cpu_seconds(arm.pid), time.perf_counter()
        for i in range(self.records):
            producer.produce("bench", self.payloads[i % 64], partition=0, on_delivery=on_delivery)
        producer.flush(60)
        t1 = time.perf_counter()  # (the clock before the CPU reading: see pipelined)
        cpu1 = cpu_seconds(arm.pid)
        t1b = time.perf_counter()
        if errors:
            raise SystemExit(f"{len(errors)} delivery errors from broker {arm.name}, first: {errors[0]}")
        consumer.resume([TopicPartition("bench", 0)])
        got = 0
        while got < self.records:
            for msg in consumer.consume(self.records - got, 10.0):
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise SystemExit(f"consume error from broker {arm.name}: {error}")
                    continue
                got += 1
        t2 = time.perf_counter()
        cpu2 = cpu_seconds(arm.pid)
        consumer.pause([TopicPartition("bench", 0)])
        row["produce_cpu"], row["produce_s"] = cpu1 - cpu0, t1 - t0
        row["consume_cpu"], row["consume_s"] = cpu2 - cpu1, t2 - t1b

    def measures(self, row: dict[str, float]) -> dict[str, float]:
        """One round's sums turned into the reported measures."""
        out: dict[str, float] = {}
        if self.small:
            out["small_produce_us"] = row["small_produce_cpu"] / self.small * 1e6
            out["small_fetch_us"] = row["small_fetch_cpu"] / self.small * 1e6
            out["small_produce_rps"] = self.small / row["small_produce_s"]
            out["small_fetch_rps"] = self.small / row["small_fetch_s"]
        if self.raw:
            gb = self.raw * RAW_RECORDS * RECORD / 1e9
            out["raw_produce_cpu_gb"] = row["raw_produce_cpu"] / gb
            out["raw_fetch_cpu_gb"] = row["raw_fetch_cpu"] / gb
            out["raw_produce_mbs"] = gb * 1000 / row["raw_produce_s"]
            out["raw_fetch_mbs"] = gb * 1000 / row["raw_fetch_s"]
        if self.records:
            gb = self.records * RECORD / 1e9
            out["produce_cpu_gb"] = row["produce_cpu"] / gb
            out["consume_cpu_gb"] = row["consume_cpu"] / gb
            out["produce_mbs"] = gb * 1000 / row["produce_s"]
            out["consume_mbs"] = gb * 1000 / row["consume_s"]
        return out
