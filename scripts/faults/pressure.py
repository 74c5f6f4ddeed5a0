"""The machine's pressure during a phase of a run: what a slow phase waited on.

A :class:`Snapshot` reads, from ``/proc`` (all cheap reads, no process is started):

* ``pressure/{cpu,memory,io}`` (PSI): each resource's ``some``/``full`` lines, ``avg10`` and the
  ``total`` stall in microseconds;
* ``stat``'s first line (the CPU time of the whole machine by state: user, system, iowait, steal...);
* ``meminfo``'s ``Dirty`` and ``Writeback`` (kB), ``vmstat``'s major faults, pages written back,
  disk reads and writes and page-cache refaults;
* ``loadavg``;
* every process's ``stat`` (utime + stime clock ticks, start time, name).

:func:`summary` turns two snapshots (a phase's start and end) into a JSON-able dict: each PSI
resource's stall during the phase (ms, and as a share of the phase's wall time) and ``avg10`` at its
end, the machine's CPU split, dirty and writeback memory, the load, and, for a phase of
``SLOW_PHASE_S`` or more, the processes that used the most CPU in it (a process started during the
phase counts from zero; a pid reused counts as a new process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROC = Path("/proc")
RESOURCES = ("cpu", "memory", "io")
CPU_STATES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# major faults, pages written back and dirtied, KiB read from and written to disk, and page-cache pages
# read again after their eviction (a machine that evicts its cache, e.g. by DAMON's pageout, reads
# a program's files again when it starts)
VMSTAT_KEYS = ("pgmajfault", "nr_written", "nr_dirtied", "pgpgin", "pgpgout", "workingset_refault_file")
SLOW_PHASE_S = 20.0
TOP = 6


@dataclass(frozen=True)
class ProcTicks:
    comm: str
    ticks: int  # utime + stime, clock ticks
    start: int  # starttime, clock ticks since boot: tells a reused pid apart


@dataclass
class Snapshot:
    monotonic: float
    pressure: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)  # resource -> kind -> (avg10, total µs)
    cpu: list[int] = field(default_factory=list)  # /proc/stat "cpu" line, clock ticks by CPU_STATES
    meminfo: dict[str, int] = field(default_factory=dict)  # kB
    vmstat: dict[str, int] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)
    procs: dict[int, ProcTicks] = field(default_factory=dict)


def parse_pressure(text: str) -> dict[str, tuple[float, int]]:
    """``some avg10=1.00 avg60=... total=123`` lines -> ``{"some": (1.0, 123), "full": ...}``."""
    out: dict[str, tuple[float, int]] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        if "avg10" in values and "total" in values:
            out[kind] = (float(values["avg10"]), int(values["total"]))
    return out


def parse_cpu(text: str) -> list[int]:
    """The aggregate ``cpu`` line of /proc/stat: ticks by state (``CPU_STATES`` order)."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            return [int(v) for v in parts[1:1 + len(CPU_STATES)]]
    return []


def parse_meminfo(text: str, keys: tuple[str, ...] = ("Dirty", "Writeback")) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in keys:
            out[name] = int(rest.split()[0])
    return out


def parse_vmstat(text: str, keys: tuple[str, ...] = VMSTAT_KEYS) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in keys:
            out[parts[0]] = int(parts[1])
    return out


def parse_proc_stat(text: str) -> ProcTicks | None:
    """/proc/<pid>/stat -> name, utime + stime, start time. The name is in parentheses and may hold
    spaces and parentheses itself: the fields follow the last ``)``."""
    left, right = text.find("("), text.rfind(")")
    if left < 0 or right < left:
        return None
    fields = text[right + 2:].split()
    if len(fields) < 20:
        return None
    # fields[0] is field 3 (state): utime, stime are fields 14, 15 and starttime field 22 (proc(5)).
    return ProcTicks(text[left + 1:right], int(fields[11]) + int(fields[12]), int(fields[19]))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:  # a process gone, a kernel without PSI
        return ""


def take(proc: Path = PROC, monotonic: float | None = None) -> Snapshot:
    import time

    snap = Snapshot(time.monotonic() if monotonic is None else monotonic)
    for resource in RESOURCES:
        parsed = parse_pressure(_read(proc / "pressure" / resource))
        if parsed:
            snap.pressure[resource] = parsed
    snap.cpu = parse_cpu(_read(proc / "stat"))
    snap.meminfo = parse_meminfo(_read(proc / "meminfo"))
    snap.vmstat = parse_vmstat(_read(proc / "vmstat"))
    snap.load = [float(v) for v in _read(proc / "loadavg").split()[:3]]
    try:
        pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        ticks = parse_proc_stat(_read(proc / str(pid) / "stat"))
        if ticks is not None:
            snap.procs[pid] = ticks
    return snap


def top_processes(before: Snapshot, after: Snapshot, n: int = TOP) -> list[tuple[int, str, int]]:
    """(pid, name, ticks used between the snapshots) of the ``n`` processes that used the most CPU,
    most first; a pid absent from ``before``, or there with another start time, counts from zero."""
    used = []
    for pid, now in after.procs.items():
        then = before.procs.get(pid)
        base = then.ticks if then is not None and then.start == now.start else 0
        if now.ticks > base:
            used.append((pid, now.comm, now.ticks - base))
    used.sort(key=lambda u: (-u[2], u[0]))
    return used[:n]


def _cmdline(proc: Path, pid: int, comm: str) -> str:
    text = _read(proc / str(pid) / "cmdline").replace("\0", " ").strip()
    return (text or comm)[:160]


def summary(before: Snapshot, after: Snapshot, proc: Path = PROC, clk_tck: int | None = None,
            slow_s: float | None = None) -> dict[str, Any]:
    """What the machine went through between two snapshots (see the module's docstring)."""
    slow_s = SLOW_PHASE_S if slow_s is None else slow_s
    seconds = max(after.monotonic - before.monotonic, 1e-9)
    out: dict[str, Any] = {}
    for resource, kinds in after.pressure.items():
        for kind, (avg10, total) in kinds.items():
            was = before.pressure.get(resource, {}).get(kind)
            if was is None:
                continue
            stall_us = total - was[1]
            out[f"{resource}_{kind}"] = {"stall_ms": round(stall_us / 1000), "pct": round(stall_us / seconds / 1e4, 1),
                                         "avg10": avg10}
    if before.cpu and after.cpu:
        delta = [a - b for a, b in zip(after.cpu, before.cpu, strict=False)]
        total = sum(delta)
        if total > 0:
            out["cpu_pct"] = {state: round(100 * d / total, 1) for state, d in zip(CPU_STATES, delta, strict=False)
                              if state in ("user", "system", "idle", "iowait", "steal")}
    for key in ("Dirty", "Writeback"):
        if key in after.meminfo:
            out[f"{key.lower()}_kb"] = {"start": before.meminfo.get(key), "end": after.meminfo[key]}
    for key, value in after.vmstat.items():
        if key in before.vmstat:
            out[f"{key}_delta"] = value - before.vmstat[key]
    if after.load:
        out["load"] = after.load
    if seconds >= slow_s:
        tck = clk_tck or os.sysconf("SC_CLK_TCK")
        out["top"] = [{"pid": pid, "cpu_s": round(ticks / tck, 2), "cpu_pct": round(100 * ticks / tck / seconds),
                       "cmd": _cmdline(proc, pid, comm)}
                      for pid, comm, ticks in top_processes(before, after)]
    return out


def slow_phases(seconds: dict[str, float], pressures: dict[str, dict[str, Any]],
                slow_s: float | None = None) -> dict[str, dict[str, Any]]:
    """The phases of ``slow_s`` (default ``SLOW_PHASE_S``) or more: their time and pressure (for a
    report's or a test's message)."""
    slow_s = SLOW_PHASE_S if slow_s is None else slow_s
    return {name: {"s": s, **pressures.get(name, {})} for name, s in seconds.items() if s >= slow_s}


def brief(s: dict[str, Any]) -> str:
    """One log line of a summary: the PSI shares, the CPU split, dirty memory, the load and the top
    processes (if any)."""
    parts = [f"{k} {v['pct']}%" for k, v in s.items() if isinstance(v, dict) and "pct" in v]
    if "cpu_pct" in s:
        parts.append("cpu " + " ".join(f"{k}={v}" for k, v in s["cpu_pct"].items()))
    if "dirty_kb" in s:
        parts.append(f"dirty {s['dirty_kb']['end']} kB writeback {s.get('writeback_kb', {}).get('end')} kB")
    if "pgpgin_delta" in s:
        parts.append(f"read {s['pgpgin_delta'] // 1024} MiB written {s.get('pgpgout_delta', 0) // 1024} MiB "
                     f"major faults {s.get('pgmajfault_delta')} refaults {s.get('workingset_refault_file_delta')}")
    if "load" in s:
        parts.append(f"load {s['load'][0]}")
    if "harness_gc" in s:
        parts.append(f"harness GC longest {s['harness_gc']['longest_ms']} ms")
    if "proxy_loop_lag" in s:
        parts.append(f"proxy loop late up to {s['proxy_loop_lag']['max_ms']} ms")
    for p in s.get("top", []):
        parts.append(f"[{p['pid']} {p['cpu_pct']}% {p['cmd'][:60]}]")
    return ", ".join(parts)


def probe(pid: int, proc: Path = PROC) -> dict[str, Any]:
    """What a process is doing now: its command line, state (R running, S sleeping, D in an
    uninterruptible wait: disk, a kernel lock), the kernel function it waits in (``wchan``), its
    kernel stack (root only; empty otherwise) and its CPU time so far; and the same of its threads'
    states as counts. For a node slow to start: still in ``ip netns exec`` or in Python, waiting on
    what."""
    base = proc / str(pid)
    text = _read(base / "stat")
    right = text.rfind(")")
    fields = text[right + 2:].split() if right >= 0 else []
    out: dict[str, Any] = {"pid": pid, "cmd": _cmdline(proc, pid, text[text.find("(") + 1:right] if right >= 0 else "")}
    if len(fields) > 12:
        tck = os.sysconf("SC_CLK_TCK")
        out["state"] = fields[0]
        out["cpu_s"] = round((int(fields[11]) + int(fields[12])) / tck, 2)
    out["wchan"] = _read(base / "wchan").strip()
    stack = [line.split("] ", 1)[-1] for line in _read(base / "stack").splitlines()]
    if stack:
        out["stack"] = stack[:12]
    states: dict[str, int] = {}
    try:
        tids = os.listdir(base / "task")
    except OSError:
        tids = []
    for tid in tids:
        t = _read(base / "task" / tid / "stat")
        r = t.rfind(")")
        if r >= 0 and len(t) > r + 2:
            states[t[r + 2]] = states.get(t[r + 2], 0) + 1
    if states:
        out["threads"] = states
    return out


class GcPauses:
    """The garbage collector's pauses in this process (``gc.callbacks``): a long collection holds the
    GIL and so stops every thread of the harness, its proxies among them. ``take()`` returns the
    count, total and longest pause (ms) since the last ``take()`` and starts over."""

    def __init__(self) -> None:
        import gc
        import time

        self._gc, self._clock = gc, time.perf_counter
        self._began = 0.0
        self.count, self.total, self.longest = 0, 0.0, 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = self._clock()
        elif self._began:
            pause = self._clock() - self._began
            self.count += 1
            self.total += pause
            self.longest = max(self.longest, pause)

    def take(self) -> dict[str, float]:
        out = {"count": self.count, "total_ms": round(self.total * 1000, 1), "longest_ms": round(self.longest * 1000, 1)}
        self.count, self.total, self.longest = 0, 0.0, 0.0
        return out

    def close(self) -> None:
        if self._callback in self._gc.callbacks:
            self._gc.callbacks.remove(self._callback)


def brief_starts(slow_starts: dict[str, list[dict[str, Any]]]) -> str:
    """One line of a run's ``slow_starts``: per node and start, how long it was waited for and each
    probe's state, kernel wait, CPU time, command and top of the kernel stack."""
    parts = []
    for node, starts in slow_starts.items():
        for start in starts:
            probes = "; ".join(
                f"after {p.get('waited_s')} s {p.get('state')} in {p.get('wchan')} cpu {p.get('cpu_s')} s "
                f"{p.get('cmd', '')[:50]!r} stack {p.get('stack', [])[:3]}" for p in start.get("probes", []))
            parts.append(f"{node} start {start.get('start')} waited {start.get('waited_s')} s: {probes}")
    return " | ".join(parts)
