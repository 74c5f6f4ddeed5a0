"""The producers' librdkafka debug log (``clients.log``, ``--producer-debug``) as events on the
history's clock: producer epoch bumps and PID resets (with librdkafka's reason), fencing, message
timeouts, and partition leader changes with their leader epochs (elections, as the producers saw them
in Metadata; needs the ``topic`` debug context).

A line is ``<date> <time,ms> [t=<history seconds> ]<FACILITY> [<client name>] [thrd:<thread>]: <text>``.
The runners write ``t=`` (``history_time_filter``) and give each producer ``client.id`` = its
history process (``p0``, ``p1.2``), so the client name is ``p0#producer-4``. Logs written before
that have neither: their times are anchored on the first line, which is served by the producers'
first ``poll()``, just after the history's first send (``anchor``), and their producers are unnamed
(``process`` None: bumps are not matched to a producer).

The lines read, as librdkafka 2.x words them (``rdkafka_idempotence.c``, ``rdkafka_topic.c``,
``rdkafka_msg.c``):

- ``DRAIN``: ``Beginning partition drain in state S for PID{Id:I,Epoch:E} epoch bump for N
  partition(s) with in-flight requests: <reason>`` (or ``Need transaction abort before beginning
  partition drain ...``, or ``... for PID{...} reset for ...: <reason>``): an epoch bump (a PID
  reset) begins; every unacknowledged message is sent again under the new epoch with new sequence
  numbers, so one already written is written twice.
- ``DRAIN``: ``All partitions drained, bumped epoch to PID{Id:I,Epoch:E}``: the bump is done.
- ``BROKER``: ``<topic> [P]: leader A epoch E -> leader B epoch F``: Metadata named a leader (logged
  on every refresh; a change of leader or epoch is an election).
- ``DRAIN``: ``<topic> [P] beginning partition drain: wait for outstanding requests to finish before
  producing to new leader``: a leader change (its epoch unknown), when the ``topic`` context is off.
- ``TIMEOUT``: ``... <topic> [P]: timed out N+M message(s) ...: message.timeout.ms exceeded``.
- ``BROKERUA``: ``<topic> [P]: broker unavailable: produce: <error>``: a produce request to that
  broker (the thread's ``/<id>``) failed: an answer (``Broker: Not leader for partition``) or the
  connection (``Local: Broker transport failure``); its batches are queued again, written or not.
- any line saying ``fenced`` (``Producer fenced by newer instance``, PRODUCER_FENCED, _FENCED).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

LINE = re.compile(r"^(?P<wall>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?:t=(?P<t>-?\d+(?:\.\d+)?) )?"
                  r"(?P<facility>\S+) \[(?P<name>[^\]]+)\] \[thrd:(?P<thread>[^\]]*)\]: (?P<text>.*)$")
PID = r"PID\{Id:(?P<pid>-?\d+),Epoch:(?P<epoch>-?\d+)\}"
BUMP = re.compile(r"(?:Beginning|Need transaction abort before beginning) partition drain (?:in state \S+ )?"
                  r"for " + PID + r" (?P<what>epoch bump|reset) for \d+ partition\(s\) with in-flight requests: "
                  r"(?P<reason>.*)$")
BUMPED = re.compile(r"All partitions drained, bumped epoch to " + PID)
LEADER = re.compile(r"^(?P<topic>\S+) \[(?P<partition>\d+)\]: leader (?P<old>-?\d+) epoch (?P<old_epoch>-?\d+) "
                    r"-> leader (?P<new>-?\d+) epoch (?P<new_epoch>-?\d+)$")
TIMEOUT = re.compile(r"(?P<topic>[^\s:]+) \[(?P<partition>\d+)\]: timed out (?P<n>\d+)\+(?P<m>\d+) message\(s\)")
NEW_LEADER = re.compile(r"(?P<topic>\S+) \[(?P<partition>\d+)\] beginning partition drain: wait for outstanding "
                        r"requests to finish before producing to new leader")
UNAVAILABLE = re.compile(r"^(?P<topic>\S+) \[(?P<partition>\d+)\]: broker unavailable: produce: (?P<error>.*)$")
FENCED = re.compile(r"fenced", re.IGNORECASE)
WALL_FORMAT = "%Y-%m-%d %H:%M:%S,%f"


@dataclass(frozen=True)
class Event:
    """One thing a producer logged, at ``time`` on the history's clock. ``kind``: ``bump`` (an epoch
    bump or PID reset begins; ``reason``), ``bumped`` (done; ``epoch``), ``leader`` (an election:
    ``partition``, ``leader``, ``epoch``, ``previous``), ``produce_error`` (``partition``, ``broker``,
    ``error``), ``timeout`` (``partition``), ``fenced``."""

    time: float
    kind: str
    process: str | None
    partition: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def process_of(name: str) -> str | None:
    """The history process of a librdkafka client name (``p0#producer-4`` -> ``p0``); None for the
    default client.id (``rdkafka#producer-2``)."""
    client_id = name.split("#", 1)[0]
    return None if client_id == "rdkafka" else client_id


def parse(lines: Iterable[str], anchor: float | None = None) -> list[Event]:
    """The events of a clients.log. A line without ``t=`` is placed at ``anchor`` + its wall-clock
    distance from the first line (``anchor`` None: such lines are skipped). Leader lines repeat on
    every Metadata refresh and per producer: only a change of a partition's leader or leader epoch,
    first seen by any producer, is kept."""
    events: list[Event] = []
    first_wall: datetime | None = None
    known: dict[int, tuple[int, int]] = {}
    drained: dict[int, float] = {}
    unavailable: dict[tuple[str | None, int, str], float] = {}
    for line in lines:
        m = LINE.match(line.rstrip("\n"))
        if m is None:
            continue
        wall = datetime.strptime(m["wall"], WALL_FORMAT)
        if first_wall is None:
            first_wall = wall
        if m["t"] is not None:
            t = float(m["t"])
        elif anchor is not None:
            t = anchor + (wall - first_wall).total_seconds()
        else:
            continue
        process = process_of(m["name"])
        text = m["text"]
        facility = m["facility"]
        if facility == "DRAIN" and (b := BUMP.search(text)):
            events.append(Event(t, "bump", process, None,
                                {"reason": b["reason"], "reset": b["what"] == "reset", "pid": int(b["pid"]),
                                 "from_epoch": int(b["epoch"])}))
        elif facility == "DRAIN" and (b := BUMPED.search(text)):
            events.append(Event(t, "bumped", process, None, {"pid": int(b["pid"]), "epoch": int(b["epoch"])}))
        elif facility == "BROKER" and (lm := LEADER.match(text)):
            partition, new = int(lm["partition"]), (int(lm["new"]), int(lm["new_epoch"]))
            previous = known.get(partition)
            if previous == new or (previous is not None and new[1] < previous[1]):
                continue
            known[partition] = new
            events.append(Event(t, "leader", process, partition,
                                {"leader": new[0], "epoch": new[1],
                                 "previous": list(previous) if previous else [int(lm["old"]), int(lm["old_epoch"])]}))
        elif facility == "DRAIN" and (nl := NEW_LEADER.search(text)):
            # A leader change without its epoch (logs without the topic context): one a partition
            # and second, whichever producer saw it first.
            partition = int(nl["partition"])
            if t - drained.get(partition, float("-inf")) >= 1.0:
                broker = m["thread"].rsplit("/", 1)[-1]  # the new leader's broker thread: <address>/<id>
                events.append(Event(t, "leader", process, partition,
                                    {"leader": int(broker) if broker.isdigit() else None, "epoch": None,
                                     "previous": None}))
            drained[partition] = t
        elif facility == "BROKERUA" and (ua := UNAVAILABLE.match(text)):
            # One line per batch: one event a producer, partition and error per second.
            partition = int(ua["partition"])
            broker = m["thread"].rsplit("/", 1)[-1]
            key = (process, partition, ua["error"])
            if t - unavailable.get(key, float("-inf")) >= 1.0:
                events.append(Event(t, "produce_error", process, partition,
                                    {"broker": int(broker) if broker.isdigit() else None, "error": ua["error"]}))
            unavailable[key] = t
        elif facility == "TIMEOUT" and (tm := TIMEOUT.search(text)):
            events.append(Event(t, "timeout", process, int(tm["partition"]),
                                {"messages": int(tm["n"]) + int(tm["m"])}))
        elif FENCED.search(text):
            events.append(Event(t, "fenced", process, None, {"text": text[:300]}))
    if known:  # the epochs were logged: the drains are the same elections seen again
        events = [e for e in events if not (e.kind == "leader" and e.detail["epoch"] is None)]
    events.sort(key=lambda e: e.time)
    return events


def load(path: Path | str, ops: list[dict[str, Any]] | None = None) -> list[Event]:
    """The events of the clients.log at ``path`` (none if it does not exist). ``ops`` (the run's
    history) anchors a log written without ``t=``: its first line at the history's first send."""
    path = Path(path)
    if not path.exists():
        return []
    anchor = None
    if ops is not None:
        anchor = next((op["time"] for op in ops if op["f"] == "send" and op["type"] == "invoke"), None)
    with path.open(encoding="utf-8", errors="replace") as lines:
        return parse(lines, anchor)


def reason_class(reason: str) -> str:
    """A bump's reason without its counts: ``message timeout`` for "N message(s) timed out on queue
    [P]", else librdkafka's words (``skipped sequence numbers``, ``unknown producer id``, ...)."""
    return "message timeout" if re.fullmatch(r"\d+ message\(s\) timed out on \S+ \[\d+\]", reason) else reason


def figures(events: list[Event]) -> dict[str, Any]:
    """A run's client events counted: elections, epoch bumps (and PID resets) by reason, failed
    produce requests by error, fencings."""
    bumps: dict[str, int] = {}
    errors: dict[str, int] = {}
    for e in events:
        if e.kind == "bump":
            key = ("PID reset: " if e.detail["reset"] else "") + reason_class(e.detail["reason"])
            bumps[key] = bumps.get(key, 0) + 1
        elif e.kind == "produce_error":
            errors[e.detail["error"]] = errors.get(e.detail["error"], 0) + 1
    return {"elections": sum(e.kind == "leader" for e in events), "epoch_bumps": bumps,
            "produce_errors": errors, "fenced": sum(e.kind == "fenced" for e in events)}


def history_time_filter(now: Callable[[], float]) -> logging.Filter:
    """A logging filter giving each record ``htime`` = ``now()`` (the history's clock), for the
    clients.log format ``%(asctime)s t=%(htime).6f %(message)s``."""

    class HistoryTime(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.htime = now()
            return True

    return HistoryTime()


FORMAT = "%(asctime)s t=%(htime).6f %(message)s"
