"""What a long wait for acknowledgements waited on (``report.json``'s ``stalls``).

The cluster runner waits after the workload's start (``first-acks``) and after each heal
(``progress-I``) for every producer to get an acknowledgement, 90 s at most. On the reference Kafka
cluster ``first-acks`` took 35-90 s in some test-suite runs (one failed at 90 s) while the nodes used
1-2 % CPU, and 1.2-1.9 s in every run since (README.md, "A long wait for acknowledgements"). A :class:`StallProbe`
runs beside such a wait: once it has lasted ``after_s`` (``pressure.SLOW_PHASE_S``), it records one
snapshot of both sides, so that the next slow wait names what it waited on:

* each producer's last librdkafka statistics (``statistics.interval.ms``, the workload keeps the last
  JSON of each): the idempotent producer's state and producer id, per broker the connection state,
  requests queued and awaiting a response, request timeouts and the requests sent by kind
  (``InitProducerId``, ``Produce``...), per partition the leader, messages queued and in flight
  (:func:`producer_brief`);
* the topic's partitions as the cluster describes them (leader, replicas, ISR), asked through the
  proxies as the clients would;
* each node's process (state, kernel wait, CPU time: ``pressure.probe``) and, for Kafka, a thread
  dump (SIGQUIT: the JVM prints every thread's stack to the node's ``stdout.log`` and goes on).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import pressure

log = logging.getLogger("faults.stall")


def producer_brief(stats_json: str) -> dict[str, Any]:
    """The parts of one librdkafka statistics JSON (its STATISTICS.md) that say why a producer
    gets no acknowledgement: the idempotence state, the brokers' connections and requests, the
    partitions' leaders and queues."""
    stats = json.loads(stats_json)
    eos = stats.get("eos", {})
    out: dict[str, Any] = {
        "age_s": round(stats.get("age", 0) / 1e6, 1),
        "idemp_state": eos.get("idemp_state"), "idemp_state_age_ms": eos.get("idemp_stateage"),
        "producer_id": eos.get("producer_id"), "producer_epoch": eos.get("producer_epoch"),
        "msg_cnt": stats.get("msg_cnt"), "brokers": {}, "partitions": {}}
    for name, b in stats.get("brokers", {}).items():
        if b.get("nodeid", -1) < 0:  # the bootstrap and internal handles
            continue
        out["brokers"][name] = {
            "state": b.get("state"), "state_age_ms": round(b.get("stateage", 0) / 1000),
            "outbuf": b.get("outbuf_cnt"), "waitresp": b.get("waitresp_cnt"),
            "req_timeouts": b.get("req_timeouts"), "disconnects": b.get("disconnects"),
            "rtt_max_ms": round(b.get("rtt", {}).get("max", 0) / 1000),
            "req": {k: v for k, v in b.get("req", {}).items() if v}}
    for topic, t in stats.get("topics", {}).items():
        for p, part in t.get("partitions", {}).items():
            if int(p) < 0 and not part.get("msgq_cnt"):  # the queue of messages before the topic's metadata
                continue
            out["partitions"][f"{topic}-{p}" if int(p) >= 0 else f"{topic}-unassigned"] = {
                "leader": part.get("leader"), "msgq": part.get("msgq_cnt"), "xmit_msgq": part.get("xmit_msgq_cnt"),
                "inflight": part.get("msgs_inflight"), "acked_msgid": part.get("acked_msgid")}
    return out


def describe_partitions(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[str, Any]:
    """The topic's partitions as the cluster tells a client: leader, replicas, ISR (or the error)."""
    from confluent_kafka.admin import AdminClient

    from .workload import CLIENT

    admin = AdminClient({"bootstrap.servers": bootstrap, **CLIENT})
    try:
        md = admin.list_topics(topic, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a snapshot of a stalled cluster: the error is the finding
        return {"error": str(exc)}
    t = md.topics.get(topic)
    if t is None:
        return {"error": "topic not in the metadata"}
    if t.error is not None:
        return {"error": str(t.error)}
    return {"brokers": sorted(md.brokers), "partitions": {
        str(p): {"leader": part.leader, "replicas": list(part.replicas), "isrs": list(part.isrs),
                 **({"error": str(part.error)} if part.error is not None else {})}
        for p, part in sorted(t.partitions.items())}}


def brief(entry: dict[str, Any]) -> str:
    """One line of a stall snapshot: per producer its idempotence state and, per broker, requests
    awaiting an answer or sent by kind; the partitions' leaders and ISR; the nodes' states."""
    if "error" in entry:
        return f"{entry['wait']} after {entry['after_s']} s: snapshot failed: {entry['error']}"
    parts = [f"{entry['wait']} after {entry['after_s']} s, acked {entry.get('acked')}"]
    for name, p in entry.get("producers", {}).items():
        brokers = " ".join(f"{b.split('/')[-1]}:{v['state']} waitresp={v['waitresp']} timeouts={v['req_timeouts']} "
                           f"req={v['req']}" for b, v in p["brokers"].items())
        queued = sum((q["msgq"] or 0) + (q["xmit_msgq"] or 0) for q in p["partitions"].values())
        inflight = sum(q["inflight"] or 0 for q in p["partitions"].values())
        parts.append(f"{name} {p['idemp_state']} pid {p['producer_id']} queued {queued} in flight {inflight} [{brokers}]")
    topic = entry.get("topic", {})
    if "partitions" in topic:
        parts.append("partitions " + " ".join(f"{k}:leader {v['leader']} isr {v['isrs']}"
                                              for k, v in topic["partitions"].items()))
    elif "error" in topic:
        parts.append(f"partitions: {topic['error']}")
    parts.append("nodes " + " ".join(f"{n}:{v.get('state', 'paused' if v.get('paused') else 'down')}"
                                     for n, v in entry.get("nodes", {}).items()))
    return "; ".join(parts)


class StallProbe:
    """Runs ``snapshot()`` once, in a thread of its own, if the wait it watches lasts ``after_s``.

    ``with StallProbe(name, snapshot, stalls): wait()`` -- a snapshot taken is appended to ``stalls``
    as ``{"wait": name, "after_s": ..., **snapshot()}`` and logged."""

    def __init__(self, name: str, snapshot: Callable[[], dict[str, Any]], stalls: list[dict[str, Any]],
                 after_s: float = pressure.SLOW_PHASE_S) -> None:
        self.name, self.snapshot, self.stalls, self.after_s = name, snapshot, stalls, after_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"stall-probe-{name}", daemon=True)

    def _watch(self) -> None:
        began = time.monotonic()
        if self._done.wait(self.after_s):
            return
        try:
            found = self.snapshot()
        except Exception as exc:  # noqa: BLE001 - a diagnosis must not break the run
            log.exception("stall snapshot of %s", self.name)
            found = {"error": repr(exc)}
        entry = {"wait": self.name, "after_s": round(time.monotonic() - began, 1), **found}
        self.stalls.append(entry)
        log.warning("wait %s still waiting after %.0f s: %s", self.name, self.after_s,
                    json.dumps(entry, default=str)[:4000])

    def __enter__(self) -> StallProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(30)
