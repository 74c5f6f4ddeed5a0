"""Checks a queue history (see ``history``) for the anomalies of Jepsen's Kafka-family analyses.

Pure functions of the operations; every anomaly comes back as a list of examples (its count is the
list's length):

* ``lost``: a value known to be written (its send acknowledged, or a consumer read it) that is not
  in the final drain (the polls of process ``drain``, which read every partition from offset 0 to its
  end after the faults); in a history without a drain, a send acknowledged that no poll ever read;
* ``unexpected``: a value read that no send ever invoked;
* ``duplicate``: one value seen at two different (partition, offset) places;
* ``double_ack``: one (partition, offset) acknowledged to two sends of different values;
  (a send acknowledged without an offset, librdkafka's implicit ack, must be read like any other
  and takes part in no offset check);
* ``inconsistent_offset``: one (partition, offset) read (or acknowledged) with different values;
* ``reorder``: in a partition, a producer's values at increasing offsets not in the order it sent them;
* ``poll_skip``: a consumer read offset ``a`` then ``b > a + 1`` of a partition while some offset
  between them is known to exist, with no assignment change or restart between the two reads;
* ``nonmonotonic_poll``: a consumer read offset ``a`` then ``b <= a`` of a partition, likewise;
* ``lost_commit``: a committing consumer, given a partition again (``assign``), first read it below
  the offset it had committed and seen acknowledged (the only member of its group, so nobody else
  commits for it).

Transactions (the read_committed variant): a send carrying ``txn`` belongs to that transaction; its
``txn`` op ``ok`` with ``outcome`` ``commit`` or ``abort`` says how it ended (``info``: unknown), and
``txn-end`` ``invoke`` is when the producer asked to end it. A transactional value is known written
only once its transaction committed (acknowledged sends of aborted or unknown transactions are not
expected in the drain), and every reader reads committed:

* ``aborted_read`` (Adya's G1a): a value of an aborted transaction was read;
* ``uncommitted_read``: a value was read before its producer asked to end its transaction (or of a
  transaction never ended): the read saw a write not yet committed;
* ``torn_transaction``: the final drain holds some values of a transaction but not all of them
  (a committed one is also counted ``lost``; one of unknown outcome must be all or nothing).

A consumer's assignment change or restart is an op of that process with ``f`` in ``RESETS`` (with
optional ``partitions``: only those are reset); it legitimately moves the consumer's position.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

Op = dict[str, Any]
DRAIN = "drain"
RESETS = frozenset({"assign", "revoke", "rebalance", "restart"})
ANOMALIES = ("lost", "unexpected", "duplicate", "double_ack", "inconsistent_offset", "reorder", "poll_skip",
             "nonmonotonic_poll", "lost_commit", "aborted_read", "uncommitted_read", "torn_transaction")


def reads(ops: Iterable[Op]) -> Iterable[tuple[Op, int, int, Any]]:
    """Every value a poll returned: (op, partition, offset, value)."""
    for op in ops:
        if op["f"] == "poll" and op["type"] == "ok":
            for partition, offset, value in op.get("values", ()):
                yield op, partition, offset, value


def check(ops: list[Op]) -> dict[str, Any]:
    """All anomalies of a history plus operation counts: ``{"anomalies": {name: [examples]}, ...}``."""
    ops = sorted(ops, key=lambda op: op["index"])
    invoked: dict[Any, tuple[str, int, int]] = {}  # value -> (process, partition, send order)
    acked: dict[Any, tuple[int, int | None]] = {}  # value -> (partition, offset) of its first ack
    ack_at: dict[tuple[int, int], Any] = {}
    anomalies: dict[str, list[Any]] = {name: [] for name in ANOMALIES}
    where: dict[Any, set[tuple[int, int]]] = defaultdict(set)
    at: dict[tuple[int, int], set[Any]] = defaultdict(set)
    txn_of: dict[Any, Any] = {}  # value -> its transaction
    txn_values: dict[Any, list[Any]] = defaultdict(list)
    outcome: dict[Any, str | None] = {}  # transaction -> "commit" / "abort" / None (unknown)
    end_asked: dict[Any, float] = {}  # transaction -> time its producer first asked to end it
    for op in ops:
        if op["f"] == "txn" and op["type"] in ("ok", "info"):
            outcome[op["txn"]] = op.get("outcome") if op["type"] == "ok" else None
        elif op["f"] == "txn-end" and op["type"] == "invoke":
            end_asked.setdefault(op["txn"], op["time"])
        if op["f"] != "send":
            continue
        if op["type"] == "invoke":
            invoked[op["value"]] = (op["process"], op["partition"], len(invoked))
            if "txn" in op:
                txn_of[op["value"]] = op["txn"]
                txn_values[op["txn"]].append(op["value"])
        elif op["type"] == "fail" and "txn" in op:  # never queued: not part of its transaction
            txn_of.pop(op["value"], None)
            if op["value"] in txn_values[op["txn"]]:
                txn_values[op["txn"]].remove(op["value"])
        elif op["type"] == "ok" and op.get("offset") is None:
            # Acknowledged without an offset: librdkafka's implicit ack (a message whose own request
            # failed, e.g. NOT_LEADER_OR_FOLLOWER, delivered once a later batch of the same producer
            # and partition succeeded: in order, so it was written). It must be read; where, unknown.
            acked.setdefault(op["value"], (op["partition"], None))
        elif op["type"] == "ok":
            place = (op["partition"], op["offset"])
            value = op["value"]
            acked.setdefault(value, place)
            where[value].add(place)
            at[place].add(value)
            if place in ack_at and ack_at[place] != value:
                anomalies["double_ack"].append({"partition": place[0], "offset": place[1],
                                                "values": [ack_at[place], value]})
            ack_at.setdefault(place, value)
    read_values: set[Any] = set()
    read_at: dict[tuple[int, int], Any] = {}
    for _op, partition, offset, value in reads(ops):
        read_values.add(value)
        where[value].add((partition, offset))
        at[(partition, offset)].add(value)
        read_at.setdefault((partition, offset), value)
    def expected(value: Any) -> bool:
        """Must be readable once acknowledged: not part of a transaction, or of a committed one."""
        return value not in txn_of or outcome.get(txn_of[value]) == "commit"

    committed_acked = {value: place for value, place in acked.items() if expected(value)}
    drained = {value for op, _p, _o, value in reads(ops) if op["process"] == DRAIN}
    if drained or any(op["process"] == DRAIN and op["f"] == "poll" for op in ops):
        known = dict(committed_acked)
        for _op, partition, offset, value in reads(ops):
            if known.get(value, (None, None))[1] is None:  # unknown, or acknowledged without an offset
                known[value] = (partition, offset)
        for value, place in known.items():
            if value not in drained:
                anomalies["lost"].append({"value": value, "partition": place[0], "offset": place[1],
                                          "acknowledged": value in acked})
    else:
        for value, place in committed_acked.items():
            if value not in read_values:
                anomalies["lost"].append({"value": value, "partition": place[0], "offset": place[1],
                                          "acknowledged": True})
    for value in sorted(read_values - invoked.keys(), key=repr):
        anomalies["unexpected"].append({"value": value})
    for value, places in where.items():
        if len(places) > 1:
            anomalies["duplicate"].append({"value": value, "at": sorted(places)})
    double_acked = {(a["partition"], a["offset"]) for a in anomalies["double_ack"]}
    for place, values in sorted(at.items()):
        if len(values) > 1 and place not in double_acked:
            anomalies["inconsistent_offset"].append({"partition": place[0], "offset": place[1],
                                                     "values": sorted(values, key=repr)})
    anomalies["reorder"] = _reorders(read_at, invoked)
    # An offset holding an aborted (or never committed) write is skipped by read_committed readers.
    visible = {place: values for place, values in at.items()
               if any(expected(v) or v in read_values for v in values)}
    skips, backwards = _consumer_order(ops, visible)
    anomalies["poll_skip"], anomalies["nonmonotonic_poll"] = skips, backwards
    anomalies["lost_commit"] = _lost_commits(ops)
    if txn_of:
        _transactions(ops, txn_of, txn_values, outcome, end_asked, drained, anomalies)
    counts = Counter((op["f"], op["type"]) for op in ops)
    return {
        "valid": not any(anomalies.values()),
        "anomaly_counts": {name: len(found) for name, found in anomalies.items()},
        "anomalies": anomalies,
        "ops": {f"{f}:{t}": n for (f, t), n in sorted(counts.items())},
        "sends_invoked": len(invoked),
        "sends_acknowledged": len(acked),
        "values_read": len(read_values),
    }


def _transactions(ops: list[Op], txn_of: dict[Any, Any], txn_values: dict[Any, list[Any]],
                  outcome: dict[Any, str | None], end_asked: dict[Any, float], drained: set[Any],
                  anomalies: dict[str, list[Any]]) -> None:
    seen: set[tuple[Any, str]] = set()
    for op, partition, offset, value in reads(ops):
        txn = txn_of.get(value)
        if txn is None:
            continue
        if outcome.get(txn) == "abort" and (value, "aborted") not in seen:
            seen.add((value, "aborted"))
            anomalies["aborted_read"].append({"value": value, "txn": txn, "partition": partition, "offset": offset,
                                              "process": op["process"], "index": op["index"]})
        asked = end_asked.get(txn)
        if (asked is None or op["time"] < asked) and (value, "early") not in seen:
            seen.add((value, "early"))
            anomalies["uncommitted_read"].append({"value": value, "txn": txn, "partition": partition,
                                                  "offset": offset, "process": op["process"], "read_at": op["time"],
                                                  "end_asked_at": asked, "index": op["index"]})
    if not any(op["process"] == DRAIN and op["f"] == "poll" for op in ops) and not drained:
        return
    for txn, values in txn_values.items():
        present = [v for v in values if v in drained]
        if present and len(present) < len(values):
            anomalies["torn_transaction"].append({"txn": txn, "outcome": outcome.get(txn), "values": values,
                                                  "drained": present})


def _reorders(read_at: dict[tuple[int, int], Any], invoked: dict[Any, tuple[str, int, int]]) -> list[Any]:
    """Per partition and producer: offsets in increasing order must carry values in send order."""
    last: dict[tuple[int, str], tuple[int, Any, int]] = {}
    found = []
    for (partition, offset), value in sorted(read_at.items()):
        if value not in invoked:
            continue
        process, _sent_partition, order = invoked[value]
        key = (partition, process)
        if key in last and last[key][2] > order:
            prev_offset, prev_value, _ = last[key]
            found.append({"partition": partition, "process": process, "earlier": [prev_offset, prev_value],
                          "later": [offset, value]})
        if key not in last or last[key][2] < order:
            last[key] = (offset, value, order)
    return found


def _consumer_order(ops: list[Op], at: dict[tuple[int, int], set[Any]]) -> tuple[list[Any], list[Any]]:
    known: dict[int, list[int]] = defaultdict(list)
    for partition, offset in at:
        known[partition].append(offset)
    for offsets in known.values():
        offsets.sort()
    position: dict[tuple[str, int], int] = {}
    skips: list[Any] = []
    backwards: list[Any] = []
    for op in ops:
        process = op["process"]
        if op["f"] in RESETS:
            partitions = op.get("partitions")
            for key in [k for k in position if k[0] == process and (partitions is None or k[1] in partitions)]:
                del position[key]
            continue
        if op["f"] != "poll" or op["type"] != "ok":
            continue
        for partition, offset, _value in op.get("values", ()):
            key = (process, partition)
            previous = position.get(key)
            if previous is not None:
                if offset <= previous:
                    backwards.append({"process": process, "partition": partition, "from": previous, "to": offset,
                                      "index": op["index"]})
                elif offset > previous + 1:
                    offsets = known[partition]
                    i = bisect.bisect_right(offsets, previous)
                    if i < len(offsets) and offsets[i] < offset:
                        skips.append({"process": process, "partition": partition, "from": previous, "to": offset,
                                      "missed": offsets[i], "index": op["index"]})
            position[key] = offset
    return skips, backwards


def _lost_commits(ops: list[Op]) -> list[Any]:
    committed: dict[tuple[str, int], int] = {}
    expect: dict[tuple[str, int], int] = {}
    found: list[Any] = []
    for op in ops:
        process = op["process"]
        if op["f"] == "commit" and op["type"] == "ok":
            for partition, offset in op.get("offsets", ()):
                key = (process, partition)
                committed[key] = max(committed.get(key, -1), offset)
        elif op["f"] == "assign":
            for partition in op.get("partitions", ()):
                if (process, partition) in committed:
                    expect[(process, partition)] = committed[(process, partition)]
        elif op["f"] == "poll" and op["type"] == "ok":
            for partition, offset, _value in op.get("values", ()):
                minimum = expect.pop((process, partition), None)
                if minimum is not None and offset < minimum:
                    found.append({"process": process, "partition": partition, "committed": minimum,
                                  "read_from": offset, "index": op["index"]})
    return found


def transaction_figures(ops: list[Op]) -> dict[str, int]:
    """How the transactions of a history ended: ``commit``, ``abort``, ``unknown``, and
    ``aborted_values_written`` (values of aborted transactions that were acknowledged, i.e. in the
    log: what a read_committed reader must skip)."""
    txn_of: dict[Any, Any] = {}
    outcome: dict[Any, str] = {}
    acked: set[Any] = set()
    figures = {"commit": 0, "abort": 0, "unknown": 0}
    for op in ops:
        if op["f"] == "send" and op["type"] == "invoke" and "txn" in op:
            txn_of[op["value"]] = op["txn"]
        elif op["f"] == "send" and op["type"] == "ok":
            acked.add(op["value"])
        elif op["f"] == "txn" and op["type"] == "ok":
            outcome[op["txn"]] = op["outcome"]
            figures[op["outcome"]] = figures.get(op["outcome"], 0) + 1
        elif op["f"] == "txn" and op["type"] == "info":
            figures["unknown"] += 1
    figures["aborted_values_written"] = sum(1 for v in acked if outcome.get(txn_of.get(v)) == "abort")
    return figures
