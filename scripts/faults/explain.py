"""Which anomalies a known client behaviour explains.

librdkafka's idempotent producer, when a message times out (``message.timeout.ms``, error
``_MSG_TIMED_OUT``), drains and bumps its producer epoch and re-sends what is still unacknowledged
under the new epoch with new sequence numbers: a message that had been written before, its
acknowledgement lost, is then written a second time and the broker cannot tell (librdkafka's
INTRODUCTION.md, "Message timeout considerations"; maintainers in confluentinc/librdkafka#4953:
"it can have duplications in case messages time out ... because the epoch needs to be bumped").
Such a duplicate is the client's, not the broker's: it is counted apart.

``score`` is the one scoring path of both runners (``runner.py``, single node, and
``cluster_runner.py``): ``valid`` counts every anomaly, ``broker_valid`` leaves out those the client
explains.
"""

from __future__ import annotations

from typing import Any

from .checker import check

Op = dict[str, Any]
TIMED_OUT = "_MSG_TIMED_OUT"


def client_timeout_duplicates(ops: list[Op], duplicates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The duplicates whose producer had a send time out between this value's send and its last
    outcome (the epoch bump that re-sends it)."""
    invoked: dict[Any, Op] = {}
    done: dict[Any, float] = {}
    timeouts: dict[str, list[float]] = {}
    for op in ops:
        if op["f"] != "send":
            continue
        if op["type"] == "invoke":
            invoked[op["value"]] = op
        else:
            done[op["value"]] = op["time"]
            if op["type"] == "info" and op.get("error") == TIMED_OUT:
                timeouts.setdefault(op["process"], []).append(op["time"])
    explained = []
    for dup in duplicates:
        send = invoked.get(dup["value"])
        if send is None:
            continue
        end = done.get(dup["value"], float("inf"))
        if any(send["time"] <= t <= end for t in timeouts.get(send["process"], ())):
            explained.append(dup)
    return explained


def client_timeout_reorders(reorders: list[dict[str, Any]], explained: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reorders that are such a re-sent duplicate: its second copy lands after values the producer
    sent later (``earlier``/``later`` carry ``[offset, value]``)."""
    values = {d["value"] for d in explained}
    return [r for r in reorders if r["later"][1] in values or r["earlier"][1] in values]


def score(report: dict[str, Any], ops: list[Op], healthy: bool) -> dict[str, Any]:
    """Score a run's report from its history: ``valid`` (no anomaly of any kind), the duplicates and
    reorders the client explains (``duplicates_after_client_timeout``,
    ``reorders_of_those_duplicates``), the broker's own (``broker_anomaly_counts``) and
    ``broker_valid`` (none of those). ``healthy`` is the run's own verdict besides the history (drain
    complete, progress after every fault, every node back); both verdicts require it."""
    found = check(ops)["anomalies"]
    explained = client_timeout_duplicates(ops, found["duplicate"])
    reorders = client_timeout_reorders(found["reorder"], explained)
    every = {name: len(examples) for name, examples in found.items()}
    counts = dict(every)
    counts["duplicate"] -= len(explained)
    counts["reorder"] -= len(reorders)
    report["duplicates_after_client_timeout"] = len(explained)
    report["reorders_of_those_duplicates"] = len(reorders)
    report["broker_anomaly_counts"] = counts
    report["valid"] = not any(every.values()) and healthy
    report["broker_valid"] = not any(counts.values()) and healthy
    return report
