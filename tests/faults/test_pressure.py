"""The fault harness's pressure sampler (scripts/faults/pressure.py): parsing /proc's files and the
per-phase deltas, on a fake /proc tree (no timing)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from faults import pressure
from faults.cluster_runner import Phases

CPU_PSI = "some avg10={a:.2f} avg60=0.00 avg300=0.00 total={t}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
IO_PSI = ("some avg10=0.00 avg60=0.00 avg300=0.00 total={t}\n"
          "full avg10={a:.2f} avg60=0.00 avg300=0.00 total={t}\n")


def stat_line(pid: int, comm: str, utime: int, stime: int, start: int) -> str:
    # fields 3..22 of proc(5): state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority nice threads itrealvalue starttime (then more)
    return (f"{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0 {start} 100 5 "
            "18446744073709551615 0 0 0\n")


def fake_proc(root: Path, cpu_total: int, io_total: int, cpu_line: str, dirty: int,
              procs: dict[int, tuple[str, int, int, int]], cmdlines: dict[int, str] | None = None) -> Path:
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    (root / "pressure" / "cpu").write_text(CPU_PSI.format(a=cpu_total / 1e6, t=cpu_total))
    (root / "pressure" / "io").write_text(IO_PSI.format(a=io_total / 1e6, t=io_total))
    # no pressure/memory: a resource missing is left out, not an error
    (root / "stat").write_text(f"{cpu_line}\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 5\n")
    (root / "meminfo").write_text(f"MemTotal:       24000000 kB\nDirty:          {dirty} kB\nWriteback:      {dirty // 2} kB\n")
    (root / "vmstat").write_text(f"nr_dirty 3\nnr_written {dirty}\npgmajfault 7\npgpgin {2 * dirty}\n")
    (root / "loadavg").write_text("3.50 2.00 1.00 4/300 1234\n")
    for entry in root.iterdir():
        if entry.name.isdigit():
            for f in entry.iterdir():
                f.unlink()
            entry.rmdir()
    for pid, (comm, utime, stime, start) in procs.items():
        (root / str(pid)).mkdir()
        (root / str(pid) / "stat").write_text(stat_line(pid, comm, utime, stime, start))
        (root / str(pid) / "cmdline").write_text((cmdlines or {}).get(pid, "").replace(" ", "\0"))
    return root


def test_parse_pressure_lines():
    text = "some avg10=12.50 avg60=3.00 avg300=1.00 total=987654\nfull avg10=0.10 avg60=0.00 avg300=0.00 total=42\n"
    assert pressure.parse_pressure(text) == {"some": (12.5, 987654), "full": (0.1, 42)}
    assert pressure.parse_pressure("") == {}


def test_parse_proc_stat_takes_the_fields_after_the_last_parenthesis():
    ticks = pressure.parse_proc_stat(stat_line(77, "weird) (name x", 300, 45, 9999))
    assert ticks == pressure.ProcTicks("weird) (name x", 345, 9999)
    assert pressure.parse_proc_stat("77 (cut") is None


def test_parse_cpu_meminfo_vmstat():
    assert pressure.parse_cpu("cpu  10 1 20 300 4 0 2 7 0 0\ncpu0 1 1 1 1 1 1 1 1\n") == [10, 1, 20, 300, 4, 0, 2, 7]
    assert pressure.parse_meminfo("Dirty:  512 kB\nWriteback:   0 kB\nCached: 9 kB\n") == {"Dirty": 512, "Writeback": 0}
    assert pressure.parse_vmstat("pgmajfault 3\nnr_written 10\nother 1\n") == {"pgmajfault": 3, "nr_written": 10}


def test_summary_of_a_slow_phase_has_the_stalls_cpu_split_and_top_processes(tmp_path):
    procs_before = {1: ("init", 5, 5, 1), 20: ("python", 100, 0, 50), 30: ("java", 1000, 0, 60), 40: ("gone", 9, 0, 70)}
    before = pressure.take(fake_proc(tmp_path, 1_000_000, 500_000, "cpu  100 0 100 800 0 0 0 0 0 0", 100,
                                     procs_before), monotonic=10.0)
    # 25 s later: python used 5 s (500 ticks at 100/s), java 30 s, pid 40 is a new process (reused pid)
    # that used 2 s since it started, pid 50 started in the phase with 1 s, init nothing.
    procs_after = {1: ("init", 5, 5, 1), 20: ("python", 400, 200, 50), 30: ("java", 4000, 0, 60),
                   40: ("kbroker", 150, 50, 9000), 50: ("kcat", 60, 40, 9100)}
    after = pressure.take(fake_proc(tmp_path, 21_000_000, 1_500_000, "cpu  400 0 200 1100 100 0 0 200 0 0", 4000,
                                    procs_after, {30: "java -cp x kafka.Kafka"}), monotonic=35.0)
    s = pressure.summary(before, after, proc=tmp_path, clk_tck=100, slow_s=20.0)
    assert s["cpu_some"] == {"stall_ms": 20000, "pct": 80.0, "avg10": 21.0}
    assert s["io_full"] == {"stall_ms": 1000, "pct": 4.0, "avg10": 1.5}
    assert not any(key.startswith("memory") for key in s)
    # delta ticks: user 300, system 100, idle 300, iowait 100, steal 200 of 1000
    assert s["cpu_pct"] == {"user": 30.0, "system": 10.0, "idle": 30.0, "iowait": 10.0, "steal": 20.0}
    assert s["dirty_kb"] == {"start": 100, "end": 4000} and s["writeback_kb"] == {"start": 50, "end": 2000}
    assert s["nr_written_delta"] == 3900 and s["pgmajfault_delta"] == 0 and s["pgpgin_delta"] == 7800
    assert s["load"] == [3.5, 2.0, 1.0]
    assert s["top"] == [
        {"pid": 30, "cpu_s": 30.0, "cpu_pct": 120, "cmd": "java -cp x kafka.Kafka"},
        {"pid": 20, "cpu_s": 5.0, "cpu_pct": 20, "cmd": "python"},
        {"pid": 40, "cpu_s": 2.0, "cpu_pct": 8, "cmd": "kbroker"},
        {"pid": 50, "cpu_s": 1.0, "cpu_pct": 4, "cmd": "kcat"},
    ]
    line = pressure.brief(s)
    assert "cpu_some 80.0%" in line and "steal=20.0" in line and "java -cp x kafka.Kafka" in line


def test_a_short_phase_names_no_processes(tmp_path):
    procs = {20: ("python", 100, 0, 50)}
    before = pressure.take(fake_proc(tmp_path, 0, 0, "cpu  1 0 1 8 0 0 0 0 0 0", 0, procs), monotonic=0.0)
    after = pressure.take(fake_proc(tmp_path, 0, 0, "cpu  1 0 1 8 0 0 0 0 0 0", 0, procs), monotonic=5.0)
    s = pressure.summary(before, after, proc=tmp_path, clk_tck=100, slow_s=20.0)
    assert "top" not in s and "cpu_pct" not in s  # no CPU ticks passed: no split to give
    assert s["cpu_some"]["pct"] == 0.0
    assert pressure.slow_phases({"start": 5.0, "heal-1": 55.7}, {"heal-1": {"load": [9.0]}}, slow_s=20.0) == {
        "heal-1": {"s": 55.7, "load": [9.0]}}


def test_a_machine_without_psi_gives_what_it_has(tmp_path):
    (tmp_path / "loadavg").write_text("1.00 1.00 1.00 1/1 1\n")
    snap = pressure.take(tmp_path, monotonic=0.0)
    assert snap.pressure == {} and snap.cpu == [] and snap.procs == {}
    assert pressure.summary(snap, pressure.take(tmp_path, monotonic=1.0), proc=tmp_path) == {"load": [1.0, 1.0, 1.0]}


def test_phases_record_a_pressure_summary_per_phase():
    phases = Phases()
    try:
        phases.mark("setup")
        phases.mark("start")
        assert list(phases.pressure) == list(phases.seconds) == ["setup", "start"]
        assert all("load" in s for s in phases.pressure.values())
    finally:
        phases.close()  # (its GC callback and its threads)


def test_probe_names_the_state_wait_and_threads(tmp_path):
    fake_proc(tmp_path, 0, 0, "cpu  1 0 1 8 0 0 0 0 0 0", 0, {42: ("ip", 150, 50, 10)}, {42: "ip netns exec kbf-1 python"})
    base = tmp_path / "42"
    (base / "stat").write_text(stat_line(42, "ip", 150, 50, 10).replace(" S 1 ", " D 1 ", 1))
    (base / "wchan").write_text("rwsem_down_write_slowpath")
    (base / "stack").write_text("[<0>] rwsem_down_write_slowpath+0x1/0x2\n[<0>] copy_mnt_ns+0x3/0x4\n")
    for tid, state in ((42, "D"), (43, "S"), (44, "S")):
        (base / "task" / str(tid)).mkdir(parents=True)
        (base / "task" / str(tid) / "stat").write_text(stat_line(tid, "ip", 0, 0, 10).replace(" S 1 ", f" {state} 1 ", 1))
    found = pressure.probe(42, proc=tmp_path)
    assert found["cmd"] == "ip netns exec kbf-1 python" and found["state"] == "D"
    assert found["wchan"] == "rwsem_down_write_slowpath"
    assert found["stack"] == ["rwsem_down_write_slowpath+0x1/0x2", "copy_mnt_ns+0x3/0x4"]
    assert found["threads"] == {"D": 1, "S": 2}
    assert found["cpu_s"] == round(200 / os.sysconf("SC_CLK_TCK"), 2)
    assert pressure.probe(999, proc=tmp_path) == {"pid": 999, "cmd": "", "wchan": ""}  # a process gone


def test_gc_pauses_count_the_collections_between_takes():
    pauses = pressure.GcPauses()
    try:
        pauses.take()
        gc.collect()
        gc.collect()
        taken = pauses.take()
        assert taken["count"] >= 2 and taken["total_ms"] >= taken["longest_ms"] >= 0
        assert (pauses.count, pauses.total, pauses.longest) == (0, 0.0, 0.0)  # started over
    finally:
        pauses.close()
    assert pauses._callback not in gc.callbacks


def test_brief_starts_names_each_probe():
    starts = {"n2": [{"start": 2, "waited_s": 55.7, "probes": [
        {"waited_s": 10.0, "state": "D", "wchan": "copy_mnt_ns", "cpu_s": 0.0, "cmd": "ip netns exec kbf-1-n2 python",
         "stack": ["a", "b", "c", "d"]}]}]}
    assert pressure.brief_starts(starts) == (
        "n2 start 2 waited 55.7 s: after 10.0 s D in copy_mnt_ns cpu 0.0 s 'ip netns exec kbf-1-n2 python' "
        "stack ['a', 'b', 'c']")
    assert pressure.brief_starts({}) == ""
