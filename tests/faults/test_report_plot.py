"""The fault report's plot (``scripts/faults/report.py``): writes/s and ack latency over time with
every fault interval shaded. Fed a synthetic history with a kill (until the broker is ready again) and
a cluster fault (until its heal); the shaded spans are read back from the figure's patches, in data
coordinates, rather than from pixels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from faults.report import SHADES, fault_intervals, figure, plot
from matplotlib.axes import Axes
from matplotlib.patches import Patch

KILL = (2.0, 3.5)
PARTITION = (6.25, 8.0)


def history() -> list[dict[str, Any]]:
    """Ten seconds of sends acknowledged 20 ms after they were sent, a kill of the broker from 2.0 s
    until it is ready again at 3.5 s, and a partition from 6.25 s until its heal at 8.0 s."""
    ops: list[dict[str, Any]] = []

    def add(time: float, process: str, type_: str, f: str, **fields: Any) -> None:
        ops.append({"index": len(ops), "time": time, "process": process, "type": type_, "f": f, **fields})

    for tenth in range(100):
        t = tenth / 10
        add(t, "p0", "invoke", "send", value=tenth, partition=tenth % 3)
        add(t + 0.02, "p0", "ok", "send", value=tenth, partition=tenth % 3, offset=tenth // 3)
    add(KILL[0], "nemesis", "info", "kill")
    add(KILL[1], "nemesis", "info", "start")
    add(PARTITION[0], "nemesis", "info", "fault", id=1, kind="partition")
    add(PARTITION[1], "nemesis", "info", "heal", id=1)
    ops.sort(key=lambda op: op["time"])
    return [{**op, "index": index} for index, op in enumerate(ops)]


def shaded(ax: Axes) -> list[tuple[float, float, tuple[float, float, float]]]:
    """(start, end, RGB) in data coordinates of every patch drawn on the axes (axvspan's spans)."""
    spans = []
    for patch in ax.patches:
        xs = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
        spans.append((round(float(xs.min()), 6), round(float(xs.max()), 6),
                      matplotlib.colors.to_rgb(patch.get_facecolor())))
    return sorted(spans)


def test_the_synthetic_history_has_two_fault_intervals() -> None:
    assert fault_intervals(history()) == [("kill", *KILL), ("partition", *PARTITION)]


def test_both_axes_shade_each_fault_interval_in_its_colour() -> None:
    fig = figure(history())
    try:
        top, bottom = fig.axes[:2]
        expected = [(*KILL, matplotlib.colors.to_rgb(SHADES["kill"])),
                    (*PARTITION, matplotlib.colors.to_rgb(SHADES["partition"]))]
        assert shaded(top) == expected
        assert shaded(bottom) == expected
        assert all(patch.get_alpha() == pytest.approx(0.2) for patch in top.patches)
        legend = top.get_legend()
        assert legend is not None
        assert [text.get_text() for text in legend.get_texts()] == ["kill", "partition"]
        handles = legend.legend_handles
        assert all(isinstance(h, Patch) for h in handles)
        # The data are there too: 10 acknowledged sends in every second, 20 ms each.
        (line,) = top.get_lines()
        assert np.asarray(line.get_xdata()).tolist() == list(range(10))
        assert set(np.asarray(line.get_ydata()).tolist()) == {10}
        latencies = np.asarray(bottom.collections[0].get_offsets())[:, 1]
        assert len(latencies) == 100 and set(latencies.round(6).tolist()) == {20.0}
    finally:
        plt.close(fig)


def test_a_history_without_faults_shades_nothing() -> None:
    ops = [op for op in history() if op["process"] != "nemesis"]
    fig = figure(ops)
    try:
        assert all(not ax.patches for ax in fig.axes)
        assert fig.axes[0].get_legend() is None
    finally:
        plt.close(fig)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "report.png"
    assert plot(history(), path) is True
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 600)  # figsize (12, 6) at 100 dpi
    assert plt.get_fignums() == []  # closed after writing


def test_plot_without_matplotlib_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain install (no [bench] or [test] extra) runs the harness without the image:
    ``report["plot"]`` is False."""
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import raises ImportError
    path = tmp_path / "report.png"
    assert plot(history(), path) is False
    assert not path.exists()
