"""librdkafka's statistics (``statistics.interval.ms``) of a benchmark worker's clients, summed:
requests sent per type and the round-trip percentiles (scripts/bench_loads.py mixed --stats)."""

from __future__ import annotations

import json


class ClientStats:
    """librdkafka's statistics (statistics.interval.ms) of every client of a worker: per request
    type, the requests sent to the broker and their round trips (librdkafka's rtt window)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last: dict[str, dict] = {}
        self.first: dict[str, dict] = {}
        self.rtt_p50: list[float] = []
        self.rtt_p99: list[float] = []
        self.int_latency_p50: list[float] = []
        self.outbuf_p50: list[float] = []

    def cb(self, raw: str) -> None:
        st = json.loads(raw)
        name = st.get("client_id", "?")
        for b in st.get("brokers", {}).values():
            if b.get("nodeid", -1) < 0:
                continue
            key = f"{name}/{b['name']}"
            self.first.setdefault(key, b)
            self.last[key] = b
            if b.get("rtt", {}).get("cnt"):
                self.rtt_p50.append(b["rtt"]["p50"] / 1000)
                self.rtt_p99.append(b["rtt"]["p99"] / 1000)
            if b.get("int_latency", {}).get("cnt"):
                self.int_latency_p50.append(b["int_latency"]["p50"] / 1000)
            if b.get("outbuf_latency", {}).get("cnt"):
                self.outbuf_p50.append(b["outbuf_latency"]["p50"] / 1000)

    def reset(self) -> None:
        self.first = dict(self.last)
        self.rtt_p50.clear()
        self.rtt_p99.clear()
        self.int_latency_p50.clear()
        self.outbuf_p50.clear()

    def summary(self) -> dict:
        if not self.enabled:
            return {}
        reqs: dict[str, int] = {}
        for key, b in self.last.items():
            before = self.first.get(key, {}).get("req", {})
            for api, n in b.get("req", {}).items():
                d = n - before.get(api, 0)
                if d:
                    reqs[api] = reqs.get(api, 0) + d

        def med(xs: list[float]) -> float | None:
            return sorted(xs)[len(xs) // 2] if xs else None

        return {"requests": reqs, "rtt_p50_ms": med(self.rtt_p50), "rtt_p99_ms": med(self.rtt_p99),
                "int_latency_p50_ms": med(self.int_latency_p50), "outbuf_p50_ms": med(self.outbuf_p50)}
