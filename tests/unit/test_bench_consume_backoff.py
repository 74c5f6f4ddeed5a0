"""The client-log counts of scripts/bench_consume_backoff.py (the consume row's fetch back-offs):
a pure function over librdkafka `debug=fetch` lines, no broker and no timing."""

from __future__ import annotations

import bench_consume_backoff as cb

_P = "%7|{t}|{fac}|rdkafka#consumer-1| [thrd:127.0.0.1:4/1]: 127.0.0.1:4/1: "


def line(t: float, fac: str, text: str) -> str:
    return _P.format(t=f"{t:.3f}", fac=fac) + text


def fetch(t: float, offset: int) -> list[str]:
    return [line(t, "FETCH", f"Fetch topic consume [0] at offset {offset} (leader epoch 0, current leader epoch 0, v2)"),
            line(t, "FETCH", "Fetch 1/1/1 toppar(s)")]


def enqueue(t: float, n: int) -> str:
    return line(t, "CONSUME", f"Enqueue {n} message(s) ({n * 1024} bytes, {n} ops) on consume [0] fetch queue "
                              "(qlen 0, v2, last_offset 1, 0 ctrl msgs, 0 aborted msgsets, uncompressed)")


def fetchable(t: float, queued: int, ok: bool = True) -> str:
    tail = "is fetchable" if ok else "is not fetchable: queued.min.messages exceeded"
    return line(t, "FETCH", f"Topic consume [0] in state active at offset 0 (leader epoch -1) "
                            f"({queued}/100000 msgs, {queued}/262144 kb queued, opv 2) {tail}")


def test_a_read_without_back_offs() -> None:
    log = [fetchable(1.0, 1), *fetch(1.0, 0), enqueue(1.01, 1008), *fetch(1.01, 1008), enqueue(1.02, 997),
           "some other line", *fetch(1.02, 2005)]
    got = cb.parse_fetch_log("\n".join(log))
    assert got == {"fetches": 3, "answers": 2, "records_per_answer": 1002.5, "queue_full_backoffs": 0,
                   "backoff_paused_s": 0, "queued_at_resume": []}


def test_a_queue_full_back_off_and_what_was_queued_when_fetching_resumed() -> None:
    log = [fetchable(1.0, 1), *fetch(1.0, 0), enqueue(1.01, 1008),
           line(1.5, "BACKOFF", "consume [0]: Fetch backoff for 1000ms: Local: Queue full"),
           fetchable(1.5, 100398, ok=False),
           line(1.5, "FETCH", "Fetch backoff for 1000ms"),
           line(2.1, "FETCH", "Fetch backoff for 400ms"),
           fetchable(2.5, 0), *fetch(2.5, 100800),
           line(3.0, "BACKOFF", "consume [0]: Fetch backoff for 10ms: Local: Queue full"),
           fetchable(3.25, 90000), *fetch(3.25, 201600)]
    got = cb.parse_fetch_log("\n".join(log))
    assert got["fetches"] == 3
    assert got["queue_full_backoffs"] == 2
    assert got["queued_at_resume"] == [0, 90000]
    assert got["backoff_paused_s"] == 1.25
    # another back-off reason (an error's) is not a queue-full one
    err = line(4.0, "BACKOFF", "consume [0]: Fetch backoff for 500ms: Broker: Not leader for partition")
    assert cb.parse_fetch_log("\n".join([*log, err]))["queue_full_backoffs"] == 2


def test_variants_from_the_command_line() -> None:
    assert cb.parse_variant("backoff10=fetch.queue.backoff.ms=10") == ("backoff10", {"fetch.queue.backoff.ms": "10"})
    assert cb.parse_variant("both=queued.min.messages=1000000,fetch.queue.backoff.ms=5") == (
        "both", {"queued.min.messages": "1000000", "fetch.queue.backoff.ms": "5"})
    assert cb.parse_variant("plain") == ("plain", {})
