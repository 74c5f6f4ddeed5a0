"""The ratio and report code of scripts/bench_ab_kafka.py (two kbroker trees and Kafka, interleaved):
pure functions over recorded runs, no broker and no timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bench_ab_kafka as ab
import pytest

TPUT = ab.Figure("mb_per_s", "throughput", "MB/s", True)
LAT = ab.Figure("p99_ms", "p99", "ms", False)


def test_rotation_puts_every_broker_in_every_position() -> None:
    orders = [ab.rotation(ab.LABELS, r) for r in range(3)]
    assert orders[0] == ["before", "after", "kafka"]
    assert orders[1] == ["after", "kafka", "before"]
    assert orders[2] == ["kafka", "before", "after"]
    for pos in range(3):
        assert {o[pos] for o in orders} == set(ab.LABELS)
    assert ab.rotation(ab.LABELS, 3) == orders[0]


def test_paired_ratios_pair_by_round_and_skip_failed_runs() -> None:
    runs: dict[str, list[dict[str, Any] | None]] = {
        "before": [{"mb_per_s": 10.0}, {"mb_per_s": 20.0}, None, {"mb_per_s": 0}],
        "after": [{"mb_per_s": 12.0}, {"mb_per_s": 10.0}, {"mb_per_s": 7.0}, {"mb_per_s": 5.0}],
    }
    # round 3: before failed; round 4: before is 0 (no ratio); pairs are by round, not by sorted value
    assert ab.paired_ratios(runs, "after", "before", "mb_per_s") == [pytest.approx(1.2), pytest.approx(0.5)]
    assert ab.paired_ratios(runs, "after", "kafka", "mb_per_s") == []
    # a missing or non-numeric figure (a bool counts as non-numeric) gives no pair
    runs2: dict[str, list[dict[str, Any] | None]] = {"before": [{"x": True}, {"x": 2.0}], "after": [{"x": 1.0}, {}]}
    assert ab.paired_ratios(runs2, "after", "before", "x") == []


def test_spread_and_verdict() -> None:
    assert ab.spread([]) is None
    s = ab.spread([1.1, 1.3, 1.2])
    assert s == {"median": pytest.approx(1.2), "min": 1.1, "max": 1.3, "n": 3}
    assert ab.verdict(s, higher_is_better=True) == "better"
    assert ab.verdict(s, higher_is_better=False) == "worse"
    low = ab.spread([0.8, 0.9, 0.95, 0.7])
    assert ab.verdict(low, higher_is_better=True) == "worse"
    assert ab.verdict(low, higher_is_better=False) == "better"
    # rounds that disagree on the side of 1 decide nothing, however far the median is from 1
    assert ab.verdict(ab.spread([0.5, 1.5, 1.6]), True) == "no clear change"
    assert ab.verdict(ab.spread([1.5, 1.6]), True) == "too few rounds"
    assert ab.verdict(None, True) == "n/a"


def _point() -> dict[str, Any]:
    return {
        "id": "p", "label": "produce", "orders": [ab.rotation(ab.LABELS, r) for r in range(3)],
        "runs": {
            "before": [{"mb_per_s": 10.0, "p99_ms": 100.0}, {"mb_per_s": 20.0, "p99_ms": 200.0},
                       {"mb_per_s": 30.0, "p99_ms": 300.0}],
            "after": [{"mb_per_s": 11.0, "p99_ms": 50.0}, {"mb_per_s": 24.0, "p99_ms": 100.0},
                      {"mb_per_s": 36.0, "p99_ms": 150.0}],
            "kafka": [{"mb_per_s": 20.0, "p99_ms": 100.0}, None, {"mb_per_s": 30.0, "p99_ms": 100.0}],
        },
    }


def test_summarise_gives_medians_and_paired_spreads() -> None:
    tput, lat = ab.summarise(_point(), [TPUT, LAT])
    assert tput["median"] == {"before": 20.0, "after": 24.0, "kafka": 25.0}
    # after/before per round: 1.1, 1.2, 1.2 -> all above 1, higher is better
    assert tput["after_before"] == {"median": pytest.approx(1.2), "min": pytest.approx(1.1),
                                    "max": pytest.approx(1.2), "n": 3}
    assert tput["verdict"] == "better"
    # against Kafka only in the rounds where Kafka ran (1 and 3): 10/20, 30/30
    assert tput["before_kafka"]["n"] == 2
    assert tput["before_kafka"]["min"] == pytest.approx(0.5)
    assert tput["before_kafka"]["max"] == pytest.approx(1.0)
    assert lat["after_before"]["median"] == pytest.approx(0.5)
    assert lat["verdict"] == "better"


def test_markdown_has_one_line_a_figure(tmp_path: Path) -> None:
    res = {"started": "2026-12-07T03:00:00+00:00", "finished": "2026-12-07T03:20:00+00:00",
           "trees": {"before": {"rev": "a567189", "commit": "a" * 40}, "after": {"rev": "main", "commit": "b" * 40}},
           "machine": {"kafka": "4.4.0"}, "loadavg": [["2026-12-07T03:00:00+00:00", "9.1", "8.0", "7.5"]],
           "points": [{**_point(), "figures": [TPUT.__dict__, LAT.__dict__]}],
           "errors": ["p round 2 on kafka: RuntimeError: gone"]}
    text = ab.write_report(res, tmp_path / "ab")
    table = [ln for ln in text.splitlines() if ln.startswith("| produce |")]
    assert len(table) == 2
    assert "| 1.20 (1.10–1.20, n=3) | better |" in table[0]
    assert "| higher |" in table[0] and "| lower |" in table[1]
    assert "`aaaaaaaaaaaa` (a567189)" in text and "03:00 9.1 8.0 7.5" in text
    assert "- p round 2 on kafka: RuntimeError: gone" in text
    assert (tmp_path / "ab.md").read_text() == text
    assert (tmp_path / "ab.json").exists()
