"""Which anomalies a known client behaviour explains.

librdkafka's idempotent producer, when a message times out (``message.timeout.ms``, error
``_MSG_TIMED_OUT``), drains and bumps its producer epoch and re-sends what is still unacknowledged
under the new epoch with new sequence numbers: a message that had been written before, its
acknowledgement lost, is then written a second time and the broker cannot tell (librdkafka's
INTRODUCTION.md, "Message timeout considerations"; maintainers in confluentinc/librdkafka#4953:
"it can have duplications in case messages time out ... because the epoch needs to be bumped").
Such a duplicate is the client's, not the broker's: it is counted apart.

The history shows only the timeouts. The producers' own log (``clients.log``, ``clientlog.py``)
shows every epoch bump with librdkafka's reason: besides a message timeout, an
OUT_OF_ORDER_SEQUENCE_NUMBER on a request that is not the first in flight ("skipped sequence
numbers"), UNKNOWN_PRODUCER_ID, a sequence gap, or a PID reset; each re-sends what is unacknowledged
under the new epoch just the same. A duplicate whose producer logged such a bump between the value's
send and its last outcome is counted apart too (``duplicates_after_epoch_bump``, those the history's
timeouts do not already explain), and ``explain`` says, for each lost or duplicated value, which
bump re-sent it and which election of its partition (leader and leader epoch, as the producers saw
Metadata) it follows.

``score`` is the one scoring path of both runners (``runner.py``, single node, and
``cluster_runner.py``): ``valid`` counts every anomaly, ``broker_valid`` leaves out those the client
explains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .checker import check
from .clientlog import Event, figures, reason_class

Op = dict[str, Any]
TIMED_OUT = "_MSG_TIMED_OUT"


def _sends(ops: list[Op]) -> tuple[dict[Any, Op], dict[Any, Op], dict[str, list[float]]]:
    """Each value's send invoke, its last outcome, and each producer's message timeouts."""
    invoked: dict[Any, Op] = {}
    done: dict[Any, Op] = {}
    timeouts: dict[str, list[float]] = {}
    for op in ops:
        if op["f"] != "send":
            continue
        if op["type"] == "invoke":
            invoked[op["value"]] = op
        else:
            done[op["value"]] = op
            if op["type"] == "info" and op.get("error") == TIMED_OUT:
                timeouts.setdefault(op["process"], []).append(op["time"])
    return invoked, done, timeouts


def client_timeout_duplicates(ops: list[Op], duplicates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The duplicates whose producer had a send time out between this value's send and its last
    outcome (the epoch bump that re-sends it)."""
    invoked, done, timeouts = _sends(ops)
    explained = []
    for dup in duplicates:
        send = invoked.get(dup["value"])
        if send is None:
            continue
        end = done[dup["value"]]["time"] if dup["value"] in done else float("inf")
        if any(send["time"] <= t <= end for t in timeouts.get(send["process"], ())):
            explained.append(dup)
    return explained


def _bumps_between(events: Sequence[Event], process: str, start: float, end: float) -> list[Event]:
    return [e for e in events if e.kind == "bump" and e.process == process and start <= e.time <= end]


def epoch_bump_duplicates(ops: list[Op], duplicates: list[dict[str, Any]],
                          events: Sequence[Event]) -> list[dict[str, Any]]:
    """The duplicates whose producer logged an epoch bump (or PID reset) in clients.log between this
    value's send and its last outcome: the bump re-sent it under a new epoch."""
    invoked, done, _ = _sends(ops)
    explained = []
    for dup in duplicates:
        send = invoked.get(dup["value"])
        if send is None:
            continue
        end = done[dup["value"]]["time"] if dup["value"] in done else float("inf")
        if _bumps_between(events, send["process"], send["time"], end):
            explained.append(dup)
    return explained


def _election(events: Sequence[Event], partition: int, before: float | None = None,
              after: float | None = None) -> dict[str, Any] | None:
    """The last leader change of ``partition`` at or before ``before``, or the first after ``after``."""
    leaders = [e for e in events if e.kind == "leader" and e.partition == partition]
    if before is not None:
        found = [e for e in leaders if e.time <= before]
        chosen = found[-1] if found else None
    else:
        chosen = next((e for e in leaders if after is not None and e.time > after), None)
    if chosen is None:
        return None
    return {"time": round(chosen.time, 3), "leader": chosen.detail["leader"], "epoch": chosen.detail["epoch"],
            "previous": chosen.detail["previous"]}


def explain(ops: list[Op], anomalies: dict[str, list[dict[str, Any]]],
            events: Sequence[Event], limit: int | None = None) -> list[dict[str, Any]]:
    """For each lost or duplicated value: its producer, partition, send and outcome; the epoch
    bumps its producer logged meanwhile (with librdkafka's reason), its failed produce requests to
    that partition (the first three: the broker and its answer) and its message timeouts; the
    election of its partition it follows (the last leader change at or before the first bump, or
    before the outcome when there is none) and, for a lost value, the first election after its
    acknowledgement (the one whose new leader may have lacked it). At most ``limit`` records."""
    invoked, done, timeouts = _sends(ops)
    found: list[dict[str, Any]] = []
    for kind in ("duplicate", "lost"):
        for anomaly in anomalies.get(kind, []):
            if limit is not None and len(found) >= limit:
                return found
            value = anomaly["value"]
            send = invoked.get(value)
            if send is None:
                continue
            outcome = done.get(value)
            end = outcome["time"] if outcome is not None else float("inf")
            bumps = _bumps_between(events, send["process"], send["time"], end)
            anchor = bumps[0].time if bumps else (outcome["time"] if outcome is not None else None)
            record: dict[str, Any] = {
                "anomaly": kind, "value": value, "process": send["process"], "partition": send["partition"],
                "sent": round(send["time"], 3),
                "outcome": None if outcome is None else {"type": outcome["type"], "time": round(outcome["time"], 3),
                                                         "offset": outcome.get("offset"),
                                                         "error": outcome.get("error")},
                "at": anomaly.get("at") or [[anomaly.get("partition"), anomaly.get("offset")]],
                "timeouts": [round(t, 3) for t in timeouts.get(send["process"], ()) if send["time"] <= t <= end],
                "bumps": [{"time": round(b.time, 3), "reason": b.detail["reason"], "reset": b.detail["reset"],
                           "from_epoch": b.detail["from_epoch"]} for b in bumps],
                "produce_errors": [{"time": round(e.time, 3), "broker": e.detail["broker"], "error": e.detail["error"]}
                                   for e in events if e.kind == "produce_error" and e.process == send["process"]
                                   and e.partition == send["partition"] and send["time"] <= e.time <= end][:3],
                "follows": None if anchor is None else _election(events, send["partition"], before=anchor),
            }
            if kind == "lost" and outcome is not None and outcome["type"] == "ok":
                record["next_election"] = _election(events, send["partition"], after=outcome["time"])
            found.append(record)
    return found


def _leader(election: dict[str, Any]) -> str:
    if election["epoch"] is None:
        who = "a new leader" if election["leader"] is None else f"n{election['leader']} new leader"
        return f"{who} at {election['time']} s (its epoch not logged)"
    prev = election["previous"]
    was = f" (was n{prev[0]} at epoch {prev[1]})" if prev and prev[0] >= 0 else ""
    return f"n{election['leader']} leader at epoch {election['epoch']}{was} at {election['time']} s"


def describe(record: dict[str, Any]) -> str:
    """One line for an ``explain`` record."""
    out = record["outcome"]
    said = "no outcome" if out is None else (
        f"acknowledged at offset {out['offset']} at {out['time']} s" if out["type"] == "ok"
        else f"{out['type']} {out.get('error')} at {out['time']} s")
    parts = [f"{record['anomaly']} value {record['value']} ({record['process']}, partition {record['partition']}, "
             f"at {record['at']}): sent at {record['sent']} s, {said}"]
    for bump in record["bumps"][:1]:  # the one that re-sent it first; the others counted
        what = "PID reset" if bump["reset"] else f"epoch bump from epoch {bump['from_epoch']}"
        parts.append(f"{record['process']} {what} at {bump['time']} s: {bump['reason']}")
    if len(record["bumps"]) > 1:
        reasons = sorted({reason_class(b["reason"]) for b in record["bumps"][1:]})
        parts.append(f"{len(record['bumps']) - 1} more bumps before its outcome ({', '.join(reasons)})")
    for error in record.get("produce_errors", []):
        parts.append(f"a produce to n{error['broker']} failed at {error['time']} s: {error['error']}")
    if record["timeouts"]:
        parts.append(f"{len(record['timeouts'])} of {record['process']}'s sends timed out meanwhile")
    if record["follows"] is not None:
        parts.append(f"follows {_leader(record['follows'])}")
    elif not record["bumps"]:
        parts.append("no epoch bump and no election logged before it")
    if record.get("next_election") is not None:
        parts.append(f"next election: {_leader(record['next_election'])}")
    return "; ".join(parts)


def client_timeout_reorders(reorders: list[dict[str, Any]], explained: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reorders that are such a re-sent duplicate: its second copy lands after values the producer
    sent later (``earlier``/``later`` carry ``[offset, value]``)."""
    values = {d["value"] for d in explained}
    return [r for r in reorders if r["later"][1] in values or r["earlier"][1] in values]


def score(report: dict[str, Any], ops: list[Op], healthy: bool, events: Sequence[Event] = ()) -> dict[str, Any]:
    """Score a run's report from its history: ``valid`` (no anomaly of any kind), the duplicates and
    reorders the client explains (``duplicates_after_client_timeout``; with the producers' log
    ``events``, ``duplicates_after_epoch_bump`` for the other bumps; ``reorders_of_those_duplicates``),
    the broker's own (``broker_anomaly_counts``) and ``broker_valid`` (none of those). ``healthy`` is
    the run's own verdict besides the history (drain complete, progress after every fault, every node
    back); both verdicts require it. With ``events``, ``client_events`` counts them
    (``clientlog.figures``) and ``explanations`` holds what ``explain`` says of the first 50 lost or
    duplicated values."""
    found = check(ops)["anomalies"]
    explained = client_timeout_duplicates(ops, found["duplicate"])
    timed = {d["value"] for d in explained}
    bumped = epoch_bump_duplicates(ops, [d for d in found["duplicate"] if d["value"] not in timed], events)
    reorders = client_timeout_reorders(found["reorder"], explained + bumped)
    every = {name: len(examples) for name, examples in found.items()}
    counts = dict(every)
    counts["duplicate"] -= len(explained) + len(bumped)
    counts["reorder"] -= len(reorders)
    report["duplicates_after_client_timeout"] = len(explained)
    report["duplicates_after_epoch_bump"] = len(bumped)
    report["reorders_of_those_duplicates"] = len(reorders)
    if events:
        report["client_events"] = figures(list(events))
        report["explanations"] = [describe(r) for r in explain(ops, found, events, limit=50)]
    report["broker_anomaly_counts"] = counts
    report["valid"] = not any(every.values()) and healthy
    report["broker_valid"] = not any(counts.values()) and healthy
    return report
