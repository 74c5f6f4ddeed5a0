"""bench/SCALE.md and bench/scale-*.png from bench/scale.json (scripts/bench_scale.py)."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median

# curve -> (x key, x label, [(metric, label, unit, higher_is_better)])
CURVES: dict[str, tuple[str, str, list[tuple[str, str, str, bool]]]] = {
    "partitions": ("partitions", "partitions", [
        ("create_s", "create topic (all led)", "s", False),
        ("idle_rss_mib", "idle RSS", "MiB", False),
        ("metadata_ms", "Metadata latency (median)", "ms", False),
        ("produce_mb_per_s", "produce, round robin over all partitions", "MB/s", True),
        ("produce_cpu_s_per_gb", "broker CPU per GB produced", "CPU s/GB", False),
        ("startup_s", "start-up with the partitions on disk", "s", False),
        ("recovery_s", "recovery after kill -9", "s", False),
    ]),
    "durability": ("producers", "concurrent producers (flush.messages=1)", [
        ("mb_per_s", "produce, acks=all, every append fsynced", "MB/s", True),
        ("records_per_s", "records/s", "rec/s", True),
        ("cpu_s_per_gb", "broker CPU per GB", "CPU s/GB", False),
    ]),
    "sizes": ("record_size", "record size (bytes)", [
        ("mb_per_s", "produce", "MB/s", True),
        ("records_per_s", "records/s", "rec/s", True),
        ("cpu_s_per_gb", "broker CPU per GB", "CPU s/GB", False),
    ]),
    "clients": ("clients", "producer connections", [
        ("mb_per_s", "produce", "MB/s", True),
        ("cpu_s_per_gb", "broker CPU per GB", "CPU s/GB", False),
    ]),
    "groups": ("members", "consumer group members", [
        ("join_s", "join (all members assigned)", "s", False),
        ("join_second_s", "join of a second group (coordinator up)", "s", False),
        ("rebalance_s", "rebalance (one member more)", "s", False),
        ("fetch_flow_mb_per_s", "group fetch, first record to last", "MB/s", True),
        ("fetch_mb_per_s", "group fetch, from the resume (librdkafka's fetcher wakes on a 1-s tick)", "MB/s", True),
        ("fetch_wake_s", "from the resume to the first record", "s", False),
        ("cpu_s_per_gb", "broker CPU per GB fetched", "CPU s/GB", False),
    ]),
    "ceiling": ("clients", "producer connections (librdkafka, 1 KiB, acks=1)", [
        ("mb_per_s", "produce", "MB/s", True),
        ("cpu_s_per_gb", "broker CPU per GB", "CPU s/GB", False),
        ("consume_mb_per_s", "consume it back (1 librdkafka consumer)", "MB/s", True),
        ("consume_steady_mb_per_s", "consume, after the first 10,000 records", "MB/s", True),
        ("consume_cpu_s_per_gb", "broker CPU per GB consumed", "CPU s/GB", False),
    ]),
    "mixed": ("rate", "offered records/s (1 KiB, 4 keyed producers, 4 consumers, retention on)", [
        ("achieved_rate", "records/s sent", "rec/s", True),
        ("p50_ms", "end-to-end p50", "ms", False),
        ("p99_ms", "end-to-end p99", "ms", False),
        ("p999_ms", "end-to-end p99.9", "ms", False),
        ("never_read", "records never read (deleted by retention before the consumer got to them)", "records",
         False),
        ("cpu_s_per_gb", "broker CPU per GB", "CPU s/GB", False),
    ]),
    "tls": ("clients", "producer connections (librdkafka, 1 KiB, acks=1; one consumer)", [
        ("produce_plain_mb_per_s", "produce over PLAINTEXT", "MB/s", True),
        ("produce_ssl_mb_per_s", "produce over SSL", "MB/s", True),
        ("produce_ssl_over_plain", "produce SSL / PLAINTEXT (per run)", "ratio", True),
        ("produce_plain_cpu_s_per_gb", "broker CPU per GB produced over PLAINTEXT", "CPU s/GB", False),
        ("produce_ssl_cpu_s_per_gb", "broker CPU per GB produced over SSL", "CPU s/GB", False),
        ("produce_ssl_broker_cores", "broker CPU while producing over SSL", "cores", False),
        ("consume_plain_mb_per_s", "consume over PLAINTEXT", "MB/s", True),
        ("consume_ssl_mb_per_s", "consume over SSL", "MB/s", True),
        ("consume_ssl_over_plain", "consume SSL / PLAINTEXT (per run)", "ratio", True),
        ("consume_plain_cpu_s_per_gb", "broker CPU per GB consumed over PLAINTEXT", "CPU s/GB", False),
        ("consume_ssl_cpu_s_per_gb", "broker CPU per GB consumed over SSL", "CPU s/GB", False),
        ("consume_ssl_broker_cores", "broker CPU while consuming over SSL", "cores", False),
    ]),
}


def _vals(runs: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in runs if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]


def stats(point: dict, broker: str, key: str) -> tuple[float | None, list[float]]:
    v = _vals(point["runs"].get(broker, []), key)
    return (median(v) if v else None), v


def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 0.1 else f"{x:.3f}"


def short(r: dict) -> str:
    if "error" in r:
        return f"ERROR {r['error'][:200]}"
    return ", ".join(f"{k}={fmt(v)}" for k, v in r.items() if isinstance(v, (int, float)))


def rows(curve: str, data: dict) -> list[dict]:
    xkey, _xl, metrics = CURVES[curve]
    out = []
    for metric, label, unit, higher in metrics:
        for p in data["points"]:
            k, kv = stats(p, "kbroker", metric)
            f, fv = stats(p, "kafka", metric)
            if k is None and f is None:
                continue
            ratio = k / f if k is not None and f else None
            ahead = None if ratio is None else (ratio >= 1 if higher else ratio <= 1)
            la = _vals(p["runs"]["kbroker"] + p["runs"]["kafka"], "loadavg_before")
            errs = [r["error"] for b in ("kbroker", "kafka") for r in p["runs"].get(b, []) if "error" in r]
            out.append({"metric": metric, "label": label, "unit": unit, "x": p[xkey], "kbroker": k,
                        "kafka": f, "ratio": ratio, "ahead": ahead, "kbroker_all": kv, "kafka_all": fv,
                        "loadavg": (min(la), max(la)) if la else None, "errors": errs})
    return out


def ceiling_table(data: dict) -> str:
    """kbroker, Kafka and the null broker (scripts/null_broker.c: answers, stores nothing)."""
    xkey, xlabel, metrics = CURVES["ceiling"]
    lines = [f"| figure | {xlabel} | kbroker | Kafka 4.4 | null broker | kbroker/Kafka | kbroker/ceiling "
             "| runs kbroker ; Kafka ; null | load avg |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for metric, label, unit, _higher in metrics:
        for p in data["points"]:
            k, kv = stats(p, "kbroker", metric)
            f, fv = stats(p, "kafka", metric)
            n, nv = stats(p, "null", metric)
            if k is None and f is None and n is None:
                continue
            la = _vals(p["runs"]["kbroker"] + p["runs"].get("kafka", []) + p["runs"].get("null", []),
                       "loadavg_before")
            runs = " ; ".join(" / ".join(fmt(x) for x in v) for v in (kv, fv, nv))
            lines.append(f"| {label} ({unit}) | {p[xkey]:,} | {fmt(k)} | {fmt(f)} | {fmt(n)} | "
                         f"{fmt(k / f if k is not None and f else None)} | "
                         f"{fmt(k / n if k is not None and n else None)} | {runs} | "
                         f"{f'{min(la):.1f}-{max(la):.1f}' if la else ''} |")
    return "\n".join(lines)


def table(curve: str, data: dict) -> str:
    if curve == "ceiling":
        return ceiling_table(data)
    xkey, xlabel, _ = CURVES[curve]
    lines = [f"| figure | {xlabel} | kbroker | Kafka 4.4 | kbroker/Kafka | at least Kafka | runs kbroker / Kafka "
             "| load avg |", "|---|---:|---:|---:|---:|---|---|---|"]
    for r in rows(curve, data):
        la = f"{r['loadavg'][0]:.1f}-{r['loadavg'][1]:.1f}" if r["loadavg"] else ""
        ahead = "" if r["ahead"] is None else ("yes" if r["ahead"] else "**no**")
        spread = (" / ".join(fmt(x) for x in r["kbroker_all"]) + " ; "
                  + " / ".join(fmt(x) for x in r["kafka_all"]))
        lines.append(f"| {r['label']} ({r['unit']}) | {r['x']:,} | {fmt(r['kbroker'])} | {fmt(r['kafka'])} | "
                     f"{fmt(r['ratio'])} | {ahead} | {spread} | {la} |")
    errs = sorted({f"{b}: {r['error'][:300]}" for p in data["points"] for b in ("kbroker", "kafka")
                   for r in p["runs"].get(b, []) if "error" in r})
    if errs:
        lines.append("")
        lines += [f"- failed run: {e}" for e in errs]
    return "\n".join(lines)


def plot(curve: str, data: dict, out: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    xkey, xlabel, metrics = CURVES[curve]
    n = len(metrics)
    cols = min(n, 4)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax, (metric, label, unit, _h) in zip(axes.flat, metrics, strict=False):
        for broker, style in (("kbroker", "o-"), ("kafka", "s--"), ("null", "^:")):
            xs, ys, allx, ally = [], [], [], []
            for p in data["points"]:
                m, vs = stats(p, broker, metric)
                if m is not None:
                    xs.append(p[xkey])
                    ys.append(m)
                    allx += [p[xkey]] * len(vs)
                    ally += vs
            if xs:
                ax.plot(xs, ys, style, label={"kbroker": "kbroker", "kafka": "Kafka 4.4", "null": "null broker (ceiling)"}[broker])
                ax.scatter(allx, ally, s=8, alpha=0.4)
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    name = f"scale-{curve}.png"
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def write(res: dict, out: Path, only: str | None = None) -> None:
    parts = ["# kbroker against Apache Kafka 4.4 at scale (scripts/bench_scale.py)", "",
             "Medians over the repetitions; every run is listed (kbroker runs ; Kafka runs). "
             "Ratio = kbroker / Kafka. Load average: 1-minute, before each run (2-core machine shared "
             "with other work).", ""]
    for curve in CURVES:
        if curve not in res:
            continue
        data = res[curve]
        img = plot(curve, data, out)
        src = data.get("kbroker", {})
        parts += [f"## {curve}", "", f"kbroker {src.get('source')} {str(src.get('commit', ''))[:10]}, "
                  f"run {data.get('started')} - {data.get('saved')}; params {data.get('params')}", ""]
        xkey = CURVES[curve][0]
        older = [p for p in data["points"] if p.get("started") not in (None, data.get("started"))]
        for p in older:  # points kept from an earlier run say which
            psrc = p.get("kbroker", {})
            parts.append(f"- point {p[xkey]:,}: from the run of {p.get('started')}, kbroker "
                         f"{str(psrc.get('commit', ''))[:10]}{'; ' + p['note'] if p.get('note') else ''}")
        if older:
            parts.append("")
        parts += [table(curve, data), ""]
        if img:
            parts += [f"![{curve}]({img})", ""]
        if only in (None, curve):
            print(f"\n== {curve} ==\n{table(curve, data)}")
    (out / "SCALE.md").write_text("\n".join(parts) + "\n")


def compact(curve: str, data: dict) -> str:
    """One row per figure, one column per point: "kbroker / Kafka = ratio" (medians), for the README."""
    if curve == "ceiling":
        return ceiling_table(data)
    xkey, xlabel, metrics = CURVES[curve]
    xs = [p[xkey] for p in data["points"]]
    lines = [f"| {xlabel} | " + " | ".join(f"{x:,}" for x in xs) + " |",
             "|---|" + "---:|" * len(xs)]
    for metric, label, unit, _higher in metrics:
        cells = []
        for p in data["points"]:
            k, _ = stats(p, "kbroker", metric)
            f, _ = stats(p, "kafka", metric)
            if k is None and f is None:
                cells.append("")
                continue
            ratio = f"**{fmt(k / f)}**" if k is not None and f else "n/a"
            cells.append(f"{fmt(k)} / {fmt(f)} = {ratio}")
        lines.append(f"| {label} ({unit}, kbroker / Kafka) | " + " | ".join(cells) + " |")
    la = [v for p in data["points"] for b in ("kbroker", "kafka") for v in _vals(p["runs"].get(b, []), "loadavg_before")]
    if la:
        lines.append(f"| load average before the runs | {min(la):.1f}-{max(la):.1f} |" + " |" * (len(xs) - 1))
    return "\n".join(lines)


def update_readme(res: dict, readme: Path) -> None:
    """Replace the tables between `<!-- scale:CURVE -->` and `<!-- /scale:CURVE -->` in the README."""
    import re

    text = readme.read_text()
    for curve in CURVES:
        if curve not in res:
            continue
        pattern = re.compile(rf"(<!-- scale:{curve} -->\n).*?(<!-- /scale:{curve} -->)", re.S)
        text = pattern.sub(lambda m, c=curve: m.group(1) + compact(c, res[c]) + "\n" + m.group(2), text)
    readme.write_text(text)
