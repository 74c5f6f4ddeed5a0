"""The per-run Markdown table of ``scripts/faults/run_cluster.py --table`` (no root needed): the
queue workload's columns, and the transactions of transactional runs."""

from __future__ import annotations

from typing import Any

from faults.run_cluster import compare, table


def report(seed: int, transactions: dict[str, int] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {
        "seed": seed, "faults_applied": 10, "sends_acknowledged": 100, "ops": {"send:info": 3},
        "anomaly_counts": {"duplicate": 2}, "duplicates_after_client_timeout": 2,
        "ack_latency_ms": {"p50": 1.5, "p99": 20.0, "max": 30.0}, "longest_write_stall": {"s": 4.2},
        "broker_anomaly_counts": {"duplicate": 0, "lost": 0}, "valid": False, "broker_valid": True,
        "crashes": [{"node": "n3"}],
    }
    if transactions is not None:
        r["transactional"] = True
        r["transactions"] = transactions
    return r


def test_queue_runs_have_no_transaction_columns() -> None:
    rows = table([report(5), report(4)]).splitlines()
    assert rows[0].count("|") == 14 and "commits" not in rows[0]
    assert rows[2] == "| 4 | 10 | 100 | 3 | 2 (2) | 1.5 | 20.0 | 30.0 | 4.2 | 0 | False | True | 1 |"
    assert rows[3].startswith("| 5 |")


def test_transactional_runs_list_their_transactions() -> None:
    txns = {"commit": 40, "abort": 7, "unknown": 9, "aborted_values_written": 12}
    rows = table([report(306, txns)]).splitlines()
    assert rows[0].endswith("| commits | aborts | unknown | aborted values written |")
    assert rows[1].count("---") == 17
    assert rows[2].endswith("| 1 | 40 | 7 | 9 | 12 |")


def test_compare_puts_the_same_seed_of_two_brokers_on_one_row() -> None:
    kb = report(277)
    kb.update(target="kbroker", operations=37630, fault_kinds={"disk-full": 3, "delay": 2, "kill": 1},
              client_events={"elections": 6, "epoch_bumps": {}, "produce_errors": {}, "fenced": 0})
    kafka = report(277)
    kafka.update(target="kafka", operations=37902, fault_kinds=kb["fault_kinds"], broker_valid=False,
                 client_events={"elections": 7, "epoch_bumps": {"skipped sequence numbers": 1},
                                "produce_errors": {}, "fenced": 0},
                 broker_anomaly_counts={"duplicate": 1, "lost": 0}, duplicates_after_epoch_bump=0)
    only_kafka = report(288)
    only_kafka.update(target="kafka", operations=5, fault_kinds={"kill": 10})
    rows = compare([kb], [kafka, only_kafka]).splitlines()
    assert rows[0].startswith("| seed | faults | kbroker: operations |") and "kafka: epoch bumps |" in rows[0]
    assert rows[1].count("---") == 14
    assert rows[2] == ("| 277 | 10: disk-full 3, delay 2, kill 1 | 37,630 | 100 | 0 | 2 (2) | 1 | 0 | "
                       "37,902 | 100 | duplicate 1 | 2 (2) | 1 | skipped sequence numbers 1 |")
    assert rows[3] == "| 288 | 10: kill 10 | - | - | - | - | - | - | 5 | 100 | 0 | 2 (2) | 1 | - |"
