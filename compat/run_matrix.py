#!/usr/bin/env python3
"""Client compatibility matrix: every client's scenarios against kbroker and Apache Kafka, each
as one node and as a three-node cluster.

    .venv/bin/python compat/run_matrix.py [--broker KIND[,KIND...]] [--clients a,b,...]
                                           [--scenarios x,y,...] [--timeout S] [--jobs N]
                                           [--out-dir DIR] [--no-install] [--keep-dirs] [--batch]

KIND is kbroker, kafka (one node each, BROKER_SETTINGS), kbroker-cluster, kafka-cluster (three
combined broker+controller nodes each, CLUSTER_SETTINGS: replication factor 3 everywhere,
min.insync.replicas=2), kbroker-sasl, kafka-sasl (one node each, clients over SASL_SSL with
SCRAM: see SaslBroker), or an alias: both (kbroker,kafka), cluster (the two clusters), sasl (the two
SASL_SSL nodes), all (the six; the default). Installs the clients (scripts/install-compat-deps), starts each broker in
turn, runs each client's scenario program once per scenario with a timeout (with --batch, once per
client for all its scenarios, each scenario still within the timeout: run_batch; against a cluster with
the bootstrap list of its three nodes and COMPAT_REPLICATION_FACTOR=3, so that every topic a
scenario creates has three replicas), and writes MATRIX.md and matrix.json (into compat/ unless
--out-dir is given).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

# The code, by concern: matrix_config.py (paths, scenarios, settings, --broker kinds, client programs),
# matrix_brokers.py (the brokers), matrix_runs.py (running scenarios), matrix_report.py (the outputs).
from matrix_brokers import KafkaNode, KBroker, add_scram_user
from matrix_config import (
    BROKER_SETTINGS,
    CLIENTS,
    CLUSTER_CI_SCENARIOS,
    CLUSTER_SETTINGS,
    COMPAT,
    KINDS,
    ROOT,
    SASL_CI_SCENARIOS,
    SCENARIOS,
    SCRAM_JAAS,
    client_commands,
    log,
    parse_kinds,
    reference_kafka,
    settings_for,
)
from matrix_report import write_outputs
from matrix_runs import log_tail, probe_client, run_batch, run_broker_matrix

# What compat/suites/ and tests/compat/ use of this module.
__all__ = ["BROKER_SETTINGS", "CLIENTS", "CLUSTER_CI_SCENARIOS", "CLUSTER_SETTINGS", "KBroker",
           "KafkaNode", "SASL_CI_SCENARIOS", "SCENARIOS", "SCRAM_JAAS", "add_scram_user",
           "log_tail", "reference_kafka", "run_batch", "settings_for"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="all",
                    help=f"comma-separated: {', '.join(KINDS)}, or both, cluster, sasl, all (default)")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("COMPAT_SCENARIO_TIMEOUT", 60)))
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("COMPAT_JOBS", 2)))
    ap.add_argument("--out-dir", default=str(COMPAT))
    ap.add_argument("--no-install", action="store_true", help="skip scripts/install-compat-deps")
    ap.add_argument("--keep-dirs", action="store_true", help="keep the brokers' data and logs (paths logged)")
    ap.add_argument("--batch", action="store_true",
                    help="run each client's scenarios in one process of its program (each scenario still "
                         "within --timeout; see run_batch) instead of one process a scenario")
    args = ap.parse_args(argv)
    try:
        kinds = parse_kinds(args.broker)
    except ValueError as e:
        ap.error(str(e))
    t0 = time.monotonic()
    if not args.no_install:
        log("installing client dependencies (scripts/install-compat-deps)")
        install = [str(ROOT / "scripts" / "install-compat-deps")]
        if not any(k.startswith("kafka") for k in kinds):
            install.append("--no-reference-kafka")
        subprocess.run(install, check=True, cwd=ROOT)
    wanted = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(wanted) - set(CLIENTS)
    if unknown:
        ap.error(f"unknown clients {sorted(unknown)}; known: {CLIENTS}")
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    cmds = {c: client_commands()[c] for c in wanted}
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:  # two programs started each
        probes = dict(zip(cmds, pool.map(lambda item: probe_client(*item), cmds.items()), strict=True))
    for c, (ver, sup, err) in probes.items():
        log(f"{c} {ver}: {len(set(sup) & set(scenarios))} scenarios {err}")
    data: dict = {
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": BROKER_SETTINGS,
        "cluster_settings": CLUSTER_SETTINGS,
        "clients": {c: probes[c][0] for c in wanted},
        "scenarios": scenarios,
        "brokers": {},
        "results": {},
    }
    for kind in kinds:
        r = run_broker_matrix(kind, cmds, probes, scenarios, args.timeout, args.jobs, args.keep_dirs, args.batch,
                              Path(args.out_dir))
        r["broker"]["generated"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        data["brokers"][kind] = r["broker"]
        data["results"][kind] = r["results"]
    data["runtime_seconds"] = round(time.monotonic() - t0, 1)
    data["generated"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    write_outputs(data, Path(args.out_dir))
    for kind in kinds:
        n = sum(r.get("status") == "pass" for rs in data["results"][kind].values() for r in rs.values())
        log(f"{kind}: {n} scenario runs passed")
    log(f"done in {data['runtime_seconds']} s; wrote {Path(args.out_dir) / 'MATRIX.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
