"""bench/RESULTS.md and bench/*.png from the results of scripts/bench_vs_kafka.py."""

from __future__ import annotations

import math
from pathlib import Path

# goal: (direction, bound) on the ratio kbroker/Kafka
GOALS = {
    "produce": (">=", 0.7),
    "consume": (">=", 0.9),
    "e2e_p99": ("<=", 1.5),
    "startup": ("<=", 0.1),
    "idle_rss": ("<=", 0.2),
}


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x)) else None


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _ratio(k: float | None, f: float | None) -> float | None:
    return k / f if k is not None and f not in (None, 0) else None


def _goal(goal: str | None, ratio: float | None) -> str:
    if goal is None:
        return ""
    op, bound = GOALS[goal]
    if ratio is None:
        return f"{op} {bound}: n/a"
    ok = ratio >= bound if op == ">=" else ratio <= bound
    return f"{op} {bound}: {'**met**' if ok else '**missed**'}"


def rows(res: dict) -> list[dict]:
    """Flat table rows: metric, unit, kbroker, kafka, ratio, goal."""
    out: list[dict] = []

    def add(metric, unit, k, f, goal=None, digits=1, err=None, spread=None):
        k, f = _num(k), _num(f)
        r = _ratio(k, f)
        out.append({"metric": metric, "unit": unit, "kbroker": k, "kafka": f, "ratio": r, "goal": goal,
                    "status": _goal(goal, r), "digits": digits, "error": err, "spread": spread})

    def spread(s, key):
        """All repetitions' values, 'kbroker runs / Kafka runs', when there was more than one."""
        parts = []
        for n in ("kbroker", "kafka"):
            runs = s.get(n, {}).get("runs")
            if not runs:
                return None
            parts.append(" ".join(_fmt(_num(x.get(key)), 0) for x in runs))
        return " / ".join(parts)

    def cpu_per_gb(x, nbytes):
        c = _num(x.get("broker_cpu_s"))
        return c / (nbytes / 1e9) if c is not None and nbytes else None

    st, idle = res.get("startup", {}), res.get("idle_rss", {})
    if st:
        add("startup to first Metadata response", "s", st["kbroker"]["seconds"], st["kafka"]["seconds"],
            "startup", 3)
    if idle:
        add("idle RSS (5 s after startup)", "MiB", idle["kbroker"]["mib"], idle["kafka"]["mib"], "idle_rss")
    for s in res.get("scenarios", []):
        k, f = s.get("kbroker", {}), s.get("kafka", {})
        err = "; ".join(f"{n}: {x['error']}" for n, x in (("kbroker", k), ("kafka", f)) if "error" in x) or None
        g = s["group"]
        if g == "produce":
            add(f"{s['label']}: throughput", "MB/s", k.get("mb_per_s"), f.get("mb_per_s"), "produce", err=err,
                spread=spread(s, "mb_per_s"))
            add(f"{s['label']}: throughput", "records/s", k.get("records_per_s"), f.get("records_per_s"),
                "produce", 0)
            add(f"{s['label']}: producer-side p99 latency", "ms", k.get("lat_p99_ms"), f.get("lat_p99_ms"), None, 0)
            add(f"{s['label']}: broker RSS under load (max)", "MiB", k.get("rss_max_mib"), f.get("rss_max_mib"))
            nb = (_num(k.get("records")) or 0) * 1024
            add(f"{s['label']}: broker CPU per GB produced", "CPU s/GB", cpu_per_gb(k, nb),
                cpu_per_gb(f, (_num(f.get("records")) or 0) * 1024), digits=2)
        elif g in ("partitions", "conns"):
            add(f"{s['label']}: throughput", "MB/s", k.get("mb_per_s"), f.get("mb_per_s"), err=err,
                spread=spread(s, "mb_per_s"))
            add(f"{s['label']}: broker CPU per GB produced", "CPU s/GB",
                cpu_per_gb(k, (_num(k.get("records")) or 0) * 1024),
                cpu_per_gb(f, (_num(f.get("records")) or 0) * 1024), digits=2)
        elif g == "consume":
            add(f"{s['label']}: throughput", "MB/s", k.get("mb_per_s"), f.get("mb_per_s"), "consume", err=err,
                spread=spread(s, "mb_per_s"))
            add(f"{s['label']}: throughput", "records/s", k.get("records_per_s"), f.get("records_per_s"),
                "consume", 0)
            add(f"{s['label']}: log size on disk", "MB", (_num(k.get("log_bytes")) or 0) / 1e6,
                (_num(f.get("log_bytes")) or 0) / 1e6, digits=0)
            add(f"{s['label']}: broker RSS while serving (max)", "MiB", k.get("rss_max_mib"), f.get("rss_max_mib"))
            add(f"{s['label']}: broker CPU per GB read", "CPU s/GB", cpu_per_gb(k, _num(k.get("bytes"))),
                cpu_per_gb(f, _num(f.get("bytes"))), digits=2)
        elif g == "consume-java":
            add(f"{s['label']}: throughput (fetch time, without group join)", "MB/s", k.get("mb_per_s"),
                f.get("mb_per_s"), err=err)
            add(f"{s['label']}: group join time", "ms", k.get("rebalance_ms"), f.get("rebalance_ms"), digits=0)
        elif g == "e2e-java":
            add(f"{s['label']}: p50", "ms", k.get("p50_ms"), f.get("p50_ms"), digits=0, err=err)
            add(f"{s['label']}: p99", "ms", k.get("p99_ms"), f.get("p99_ms"), digits=0)
            add(f"{s['label']}: p99.9", "ms", k.get("p999_ms"), f.get("p999_ms"), digits=0)
        elif g == "e2e":
            add(f"{s['label']}: p50", "ms", k.get("p50_ms"), f.get("p50_ms"), digits=2, err=err)
            add(f"{s['label']}: p99", "ms", k.get("p99_ms"), f.get("p99_ms"), "e2e_p99", 2)
            add(f"{s['label']}: p99.9", "ms", k.get("p999_ms"), f.get("p999_ms"), digits=2)
    return out


def table(rs: list[dict]) -> str:
    lines = ["| metric | unit | kbroker | Kafka | kbroker/Kafka | goal | every run (kbroker / Kafka) |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in rs:
        d = r["digits"]
        lines.append(f"| {r['metric']} | {r['unit']} | {_fmt(r['kbroker'], d)} | {_fmt(r['kafka'], d)} | "
                     f"{_fmt(r['ratio'], 2) if r['ratio'] is not None else 'n/a'} | {r['status']} | "
                     f"{r['spread'] or ''} |")
        if r["error"]:
            lines.append(f"| ↳ error | | | | | {r['error'][:300].replace('|', '/')} | |")
    return "\n".join(lines)


def goals_summary(rs: list[dict]) -> str:
    out = []
    for goal, (op, bound) in GOALS.items():
        sel = [r for r in rs if r["goal"] == goal and r["unit"] not in ("records/s",)]
        if not sel:
            out.append(f"- {goal}: not measured")
            continue
        ratios = [r["ratio"] for r in sel]
        met = [r for r in sel if r["ratio"] is not None and
               (r["ratio"] >= bound if op == ">=" else r["ratio"] <= bound)]
        shown = ", ".join(_fmt(x, 2) for x in ratios)
        out.append(f"- **{goal}** (ratio {op} {bound}): {len(met)}/{len(sel)} met — ratio(s) {shown}")
    return "\n".join(out)


def plots(res: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made: list[str] = []
    sc = res.get("scenarios", [])
    colors = {"kbroker": "#3b7dd8", "kafka": "#d8663b"}

    def val(s, name, key):
        return _num(s.get(name, {}).get(key)) or 0.0

    def bars(ax, labels, series, ylabel, title, log=False):
        w = 0.38
        xs = range(len(labels))
        for i, name in enumerate(("kbroker", "kafka")):
            vals = series[name]
            b = ax.bar([x + (i - 0.5) * w for x in xs], vals, w, label="kbroker" if name == "kbroker" else "Kafka",
                       color=colors[name])
            for rect, v in zip(b, vals, strict=True):
                ax.annotate(_fmt(v), (rect.get_x() + rect.get_width() / 2, rect.get_height()), ha="center",
                            va="bottom", fontsize=7)
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)

    # throughput
    tp = [s for s in sc if s["group"] in ("produce", "consume")]
    if tp:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        labels = [s["id"].replace("produce-", "").replace("acks", "acks=") for s in tp]
        bars(ax, labels, {n: [val(s, n, "mb_per_s") for s in tp] for n in ("kbroker", "kafka")}, "MB/s",
             "Throughput, 1 KiB records (produce: ProducerPerformance; consume: librdkafka)")
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=110)
        plt.close(fig)
        made.append("throughput.png")
    # latency
    e2e = [s for s in sc if s["group"] == "e2e"]
    if e2e:
        s = e2e[0]
        fig, ax = plt.subplots(figsize=(6, 4))
        keys = [("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")]
        bars(ax, [k[1] for k in keys], {n: [val(s, n, k[0]) for k in keys] for n in ("kbroker", "kafka")},
             "ms (log scale)", s["label"], log=True)
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)
        made.append("latency.png")
    # scaling
    part = [s for s in sc if s["group"] == "partitions"]
    conn = [s for s in sc if s["group"] == "conns"]
    if part or conn:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, ss, key, title in ((axes[0], part, "partitions", "produce MB/s vs partitions (ProducerPerformance)"),
                                   (axes[1], conn, "conns", "produce MB/s vs producer connections (librdkafka)")):
            if not ss:
                ax.set_visible(False)
                continue
            xs = [s[key] for s in ss]
            for n in ("kbroker", "kafka"):
                ax.plot(xs, [val(s, n, "mb_per_s") for s in ss], "o-", color=colors[n],
                        label="kbroker" if n == "kbroker" else "Kafka")
            ax.set_xscale("log")
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.set_ylabel("MB/s")
            ax.set_ylim(bottom=0)
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "scaling.png", dpi=110)
        plt.close(fig)
        made.append("scaling.png")
    # resources
    if res.get("startup"):
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.5))
        names = ("kbroker", "kafka")
        load = next((s for s in sc if s["id"] == "produce-acks1-none"), None)
        data = [("startup (s)", [res["startup"][n]["seconds"] for n in names]),
                ("idle RSS (MiB)", [res["idle_rss"][n]["mib"] for n in names]),
                ("RSS under produce load (MiB)", [val(load, n, "rss_max_mib") if load else 0 for n in names])]
        for ax, (title, vals) in zip(axes, data, strict=True):
            b = ax.bar(["kbroker", "Kafka"], vals, color=[colors[n] for n in names])
            for rect, v in zip(b, vals, strict=True):
                ax.annotate(_fmt(v, 2), (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                            ha="center", va="bottom", fontsize=8)
            ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "resources.png", dpi=110)
        plt.close(fig)
        made.append("resources.png")
    return made


def imports_md(res: dict) -> str:
    imp = res.get("startup_imports")
    if not imp or "error" in imp:
        return ""
    st = res.get("startup", {}).get("kbroker", {}).get("seconds")
    lines = [f"#### startup: `python -X importtime -c 'import kbroker.broker'` ({imp['modules']} modules, "
             f"{imp['message_modules']} of them generated `kbroker_protocol.messages.*`; import self time "
             f"{imp['import_self_s']:.3f} s, process {imp['process_wall_s']:.3f} s"
             + (f"; measured startup to first Metadata {st:.3f} s" if st else "") + ")\n",
             "| group | s | % of import time |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.3f} | {pc:.1f} |" for k, v, pc in imp["groups"]]
    lines += ["", "| module (largest self import time) | s | % |", "|---|---:|---:|"]
    lines += [f"| `{k}` | {v:.3f} | {pc:.1f} |" for k, v, pc in imp["top"]]
    return "\n".join(lines) + "\n\n"


def profile_md(res: dict) -> str:
    prof = res.get("profile")
    if not prof:
        return "Not profiled in this run.\n"
    if "error" in prof:
        return f"Not profiled: {prof['error']}\n"
    parts = [f"py-spy {prof.get('rate_hz')} Hz, {prof.get('seconds')} s per load, `--nonblocking`, "
             "attached to the running kbroker. Percentages are of the samples in which kbroker was "
             "running (py-spy leaves out idle samples: the event loop waiting in epoll). Folded stacks: "
             "`bench/profile-*.folded` (open with speedscope or flamegraph.pl).\n"]
    for load in ("produce", "conns100", "consume"):
        p = prof.get(load)
        if not p:
            continue
        tp = p.get("throughput") or {}
        tps = f", {tp['mb_per_s']:.1f} MB/s while profiled" if tp.get("mb_per_s") else ""
        possible = (prof.get("rate_hz") or 0) * (prof.get("seconds") or 0)
        busy = f", on CPU or in a syscall in {100.0 * p['samples'] / possible:.0f}% of the samples" if possible else ""
        parts.append(f"#### {load}: {p['load']} ({p['samples']} samples{busy}{tps})\n")
        parts.append("| self % | function (leaf) | | incl. % | function (on stack) |\n|---:|---|---|---:|---|")
        selfs, incl = p.get("self", []), p.get("inclusive", [])
        for i in range(max(len(selfs), len(incl))):
            a = selfs[i] if i < len(selfs) else ("", None)
            b = incl[i] if i < len(incl) else ("", None)
            parts.append(f"| {_fmt(a[1])} | `{a[0]}` | | {_fmt(b[1])} | `{b[0]}` |")
        parts.append("")
    return "\n".join(parts) + "\n"


def write(res: dict, out: Path) -> None:
    out.mkdir(exist_ok=True)
    made = plots(res, out)
    rs = rows(res)
    m = res.get("machine", {})
    kb = res.get("kbroker", {})
    p = res.get("params", {})
    quick = res.get("mode") == "quick"
    notes_file = out / "NOTES.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    md = [
        "# kbroker vs Apache Kafka — benchmark results",
        "",
        "Generated by `.venv/bin/python scripts/bench_vs_kafka.py" + (" --quick" if quick else "") +
        "` (do not edit by hand; hand-written analysis lives in `bench/NOTES.md` and is appended below).",
        "",
        f"- Run: {res.get('started')} → {res.get('finished')} UTC, mode **{res.get('mode')}**"
        + (" (smaller loads; the consume log is below 1 GB)" if quick else ""),
        f"- kbroker: {kb.get('source')} commit `{str(kb.get('commit'))[:12]}`"
        + (" (with uncommitted changes)" if kb.get("dirty") else ""),
        f"- Apache Kafka {m.get('kafka')} (KRaft, combined broker+controller, one node, "
        "`-Xmx1G -Xms1G` G1 as in kafka-server-start.sh)",
        f"- Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM, Linux {m.get('kernel')}; "
        f"Python {m.get('python')}; {m.get('java')}; librdkafka {m.get('librdkafka')} "
        f"(confluent-kafka {m.get('confluent_kafka')})",
        f"- Load average at start / end: {' '.join(m.get('loadavg_start', []))} / "
        f"{' '.join(m.get('loadavg_end', []))} (1/5/15 min; the machine is shared — see notes)",
        "",
        "## Set-up",
        "",
        "- Both brokers: fresh data dir, one node, PLAINTEXT on loopback, the same settings "
        "(scripts/reference_kafka.py `TEST_SETTINGS`, topic auto-creation off), flush left to the OS "
        "(no `log.flush.*`), replication factor 1; every topic is created with an admin request before "
        "its scenario.",
        "- Interleaved: each scenario runs on kbroker, then on Kafka, in the same run; both brokers stay up "
        "for the whole run (the idle one costs ~nothing).",
        f"- Produce: Kafka's `ProducerPerformance` (kafka-tools {m.get('kafka')}), 1 KiB records, "
        f"`batch.size=65536 linger.ms=5`, {p.get('produce_records'):,} records per run, 1 partition unless "
        "said otherwise. MB/s = 10^6 bytes of record values per second. Broker RSS sampled from "
        "/proc/<pid>/status VmRSS every 100 ms during the run; broker CPU = utime+stime during the run.",
        f"- Connections: librdkafka producers (one connection each) in one Python process, "
        f"{p.get('conn_records'):,} records round robin, acks=1, same batch/linger, 1 partition.",
        f"- Consume: {p.get('consume_records'):,} records (~{p.get('consume_records', 0) * 1024 / 1e9:.2f} GB) "
        "written with ProducerPerformance, then read from offset 0 by a librdkafka consumer "
        "(confluent-kafka, `assign()`, no consumer group, so the figure does not depend on the group "
        "coordinator), clock from assign to the last record; then Kafka's ConsumerPerformance (Java "
        "client, subscribe() in a group) reads the same log once.",
        f"- End-to-end latency: librdkafka producer at a fixed 5,000 records/s (acks=1, linger.ms=1) for "
        f"{p.get('e2e_seconds')} s and a librdkafka consumer (fetch.wait.max.ms=500, fetch.min.bytes=1) "
        "in another process; latency = receive time − send time stamped in the record; first second "
        "dropped.",
        f"- Repetitions: {p.get('reps')} per produce scenario, {p.get('scaling_reps')} per scaling point, "
        f"{p.get('consume_reps', p.get('reps'))} reads of the consume log, one end-to-end run; each figure "
        "is the median over the repetitions (all of them in the last column).",
        "- Startup: spawn of the broker process → first successful Metadata v4 response (polled every "
        f"5 ms; Kafka's storage format runs before the clock starts); median of {p.get('startup_reps')} "
        "interleaved starts. Idle RSS 5 s after that.",
        "",
        "## Results",
        "",
        table(rs),
        "",
        "### Goals (ratio kbroker/Kafka)",
        "",
        goals_summary(rs),
        "",
    ]
    if res.get("errors"):
        md += ["### Errors in this run", ""] + [f"- {e}" for e in res["errors"]] + [""]
    if made:
        md += ["### Plots", ""] + [f"![{x}]({x})" for x in made] + [""]
    md += ["## Where kbroker's time goes (profile)", "", imports_md(res) + profile_md(res)]
    if notes:
        md += ["", notes.strip(), ""]
    (out / "RESULTS.md").write_text("\n".join(md))
