"""scripts/bench_metrics_ab.py's figures: the measures of a round, the paired bootstrap of two arms'
rounds, each measure's summary against arm A, and the verdict printed from it."""

from __future__ import annotations

import random
import statistics

# (row key, label, unit, format, higher is better)
MEASURES: tuple[tuple[str, str, str, str, bool], ...] = (
    ("small_produce_us", "broker CPU per small Produce request", "us", ".1f", False),
    ("small_fetch_us", "broker CPU per small Fetch request", "us", ".1f", False),
    ("raw_produce_cpu_gb", "broker CPU per GB produced (pipelined 64 KiB batches)", "s/GB", ".3f", False),
    ("raw_fetch_cpu_gb", "broker CPU per GB fetched (pipelined, 1 MiB)", "s/GB", ".3f", False),
    ("produce_cpu_gb", "broker CPU per GB produced (confluent-kafka, acks=all)", "s/GB", ".3f", False),
    ("consume_cpu_gb", "broker CPU per GB consumed (confluent-kafka)", "s/GB", ".3f", False),
    ("small_produce_rps", "small Produce requests per second", "/s", ".0f", True),
    ("small_fetch_rps", "small Fetch requests per second", "/s", ".0f", True),
    ("raw_produce_mbs", "produce throughput (pipelined)", "MB/s", ".1f", True),
    ("raw_fetch_mbs", "fetch throughput (pipelined)", "MB/s", ".1f", True),
    ("produce_mbs", "produce throughput (confluent-kafka)", "MB/s", ".1f", True),
    ("consume_mbs", "consume throughput (confluent-kafka)", "MB/s", ".1f", True),
)


def bootstrap(sessions_a: list[list[float]], sessions_b: list[list[float]], reps: int,
              rng: random.Random) -> tuple[float, float, float, float, float, float]:
    """Paired rounds of two arms (per session, round by round): (ratio of the totals - 1, its 95 %
    interval; median of the rounds' ratios - 1, its 95 % interval), in per cent. The interval
    resamples each session's rounds with replacement (stratified: a resample keeps the sessions'
    sizes), the same rounds for both arms. The totals count a scrape that fell in a block in
    proportion; the median is robust to a round disturbed by the machine but mostly misses the
    scrape (a block without one is the common case)."""
    pairs = [list(zip(a, b, strict=True)) for a, b in zip(sessions_a, sessions_b, strict=True)]

    def stats(sample: list[tuple[float, float]]) -> tuple[float, float]:
        return ((sum(b for _, b in sample) / sum(a for a, _ in sample) - 1) * 100,
                (statistics.median(b / a for a, b in sample) - 1) * 100)

    pooled = [p for session in pairs for p in session]
    total, median = stats(pooled)
    totals, medians = [], []
    for _ in range(reps):
        sample: list[tuple[float, float]] = []
        for session in pairs:
            sample.extend(rng.choices(session, k=len(session)))
        t, m = stats(sample)
        totals.append(t)
        medians.append(m)
    totals.sort()
    medians.sort()
    lo, hi = int(0.025 * reps), int(0.975 * reps) - 1
    return total, totals[lo], totals[hi], median, medians[lo], medians[hi]


def summarise(rows: dict[str, list[list[dict[str, float]]]], arms: list[str], reps: int) -> dict[str, object]:
    """Per measure: each arm's median and spread, and each arm against A: the ratio of the totals
    and the median of the paired rounds' ratios, each with its bootstrap interval, in per cent."""
    rng = random.Random(21)
    out: dict[str, object] = {}
    for key, label, unit, fmt, higher in MEASURES:
        if key not in rows["A"][0][0]:
            continue
        entry: dict[str, object] = {"label": label, "unit": unit}
        print(f"{label} [{unit}]:")
        for arm in arms:
            values = [row[key] for session in rows[arm] for row in session]
            q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
            entry[arm] = {"median": q2, "q1": q1, "q3": q3, "min": min(values), "max": max(values)}
            line = f"  {arm:2} median {q2:{fmt}} [{q1:{fmt}}-{q3:{fmt}}] ({min(values):{fmt}}-{max(values):{fmt}})"
            if arm != "A":
                # a throughput's totals: the same MB over the summed seconds (bootstrap the times)
                def side(name: str, key: str = key, higher: bool = higher) -> list[list[float]]:
                    return [[1 / row[key] if higher else row[key] for row in s] for s in rows[name]]

                t, tl, th, m, ml, mh = bootstrap(side("A"), side(arm), reps, rng)
                if higher:
                    t, tl, th, m, ml, mh = (((1 / (1 + x / 100)) - 1) * 100 for x in (t, th, tl, m, mh, ml))
                # each session's ratio of the totals: its brokers are fresh processes, and what
                # differs from one process to the next (the interval above resamples rounds within
                # sessions, not sessions) shows as these spreading wider than the interval
                per_session = [(sum(b) / sum(a) - 1) * 100 for a, b in zip(side("A"), side(arm), strict=True)]
                if higher:
                    per_session = [((1 / (1 + x / 100)) - 1) * 100 for x in per_session]
                entry[f"{arm}/A"] = {"totals": t, "totals_low": tl, "totals_high": th, "median": m,
                                     "median_low": ml, "median_high": mh, "sessions": per_session}
                line += (f"; {arm}/A: totals {t:+.2f} % (95 % CI {tl:+.2f} to {th:+.2f}), median of paired "
                         f"ratios {m:+.2f} % ({ml:+.2f} to {mh:+.2f}); totals per session "
                         + " ".join(f"{x:+.1f}" for x in per_session) + " %")
            print(line)
        out[key] = entry
    return out


def verdict(summary: dict[str, object], scrapes: dict[str, list[tuple[float, int]]], names: list[str],
            in_bursts: bool = False) -> None:
    """Each metrics-on arm's throughput cost for a CPU-bound broker (its event loop on one core)
    scraped once a second: the per-work CPU ratio to A, and the scrapes' CPU share of the core.
    With ``in_bursts`` the bursts already hold the scrapes: the ratios as they are, throughputs
    included (a throughput's cost: how much lower than A's, in per cent)."""
    for name, done in scrapes.items():
        share = 0.0 if in_bursts else statistics.mean(c for c, _ in done)  # core-s per s at one scrape a second
        if in_bursts:
            print(f"{name} against A, scraped once per second of its bursts inside them (cost: more CPU per "
                  f"work, less throughput):")
        else:
            print(f"{name} against A, a CPU-bound broker scraped every second (per-work CPU ratio, then the "
                  f"scrape's {share * 100:.2f} % of the core added):")
        for entry in summary.values():
            assert isinstance(entry, dict)
            pair = entry.get(f"{name}/A")
            if not isinstance(pair, dict) or (entry["unit"] not in ("us", "s/GB") and not in_bursts):
                continue
            sign = -1 if entry["unit"] not in ("us", "s/GB") else 1  # a throughput: its loss is the cost

            def cost(ratio: float, share: float = share, sign: int = sign) -> float:
                return sign * ((1 + ratio / 100) / (1 - share) - 1) * 100

            lo, hi = sorted((cost(pair["totals_low"]), cost(pair["totals_high"])))
            mlo, mhi = sorted((sign * pair["median_low"], sign * pair["median_high"]))
            control = entry.get("A2/A")
            line = (f"  {entry['label']}: {cost(pair['totals']):+.2f} % (95 % CI {lo:+.2f} to {hi:+.2f}), paired "
                    f"median {sign * pair['median']:+.2f} % ({mlo:+.2f} to {mhi:+.2f})")
            if isinstance(control, dict):
                clo, chi = sorted((sign * control["totals_low"], sign * control["totals_high"]))
                line += (f"; A/A control {sign * control['totals']:+.2f} % ({clo:+.2f} to {chi:+.2f}), per session "
                         + " ".join(f"{sign * x:+.1f}" for x in control["sessions"]))
            line += "; per session " + " ".join(f"{cost(x):+.1f}" for x in pair["sessions"]) + " %"
            print(line)
