"""compat/run_matrix.py's outputs: matrix.json and MATRIX.md (the broker pairs side by side, settings,
failures)."""

from __future__ import annotations

import json
from pathlib import Path

from matrix_config import BROKER_NAMES, CLUSTER_NODES, KINDS, SASL_MECHANISMS, SASL_USER

# --- output -----------------------------------------------------------------------------------

SYMBOL = {"pass": "✅", "fail": "❌", "timeout": "⏱", "unsupported": "—", "not run": "·"}


PAIRS = [("kbroker", "kafka"), ("kbroker-cluster", "kafka-cluster"), ("kbroker-sasl", "kafka-sasl")]


def write_outputs(data: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "matrix.json").write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    clients = data["clients"]
    brokers = data["brokers"]
    ran = [k for k in KINDS if k in brokers]
    # A pair (kbroker, Kafka) is shown when either of them ran: one node, then the clusters.
    pairs = [pair for pair in PAIRS if any(k in brokers for k in pair)]
    shown = [k for pair in pairs for k in pair]
    cell_desc = " · ".join(
        {PAIRS[0]: "**kbroker / Apache Kafka**, one node each",
         PAIRS[1]: f"**kbroker / Apache Kafka**, {CLUSTER_NODES}-node clusters",
         PAIRS[2]: "**kbroker / Apache Kafka**, one node each with clients over SASL_SSL (SCRAM)"}[pair]
        for pair in pairs)
    lines = [
        "# Client compatibility matrix",
        "",
        f"Generated {data['generated']} by `compat/run_matrix.py` in {data['runtime_seconds']:.0f} s. "
        f"Each cell is {cell_desc}: ✅ pass, ❌ fail, ⏱ timeout, — not supported by the "
        "client (or its scenario program), · not run. kbroker and Kafka run with the same settings "
        "(below); scenarios and what they check: `compat/README.md`; known failures and differences: "
        "`compat/FINDINGS.md`.",
        "",
    ]
    for kind in shown:
        b = brokers.get(kind, {})
        desc = b.get("error") or (f"started in {b['start_seconds']} s, matrix {b.get('seconds')} s"
                                  if "start_seconds" in b else "not run")
        if b.get("generated") and b.get("generated") != data["generated"]:
            desc += f" (a separate run, {b['generated']})"
        lines.append(f"- **{BROKER_NAMES[kind]}**: {desc}")
    lines.append("")

    def status(kind: str, c: str, s: str) -> str:
        return data["results"].get(kind, {}).get(c, {}).get(s, {}).get("status", "not run")

    def supported(c: str, s: str, pair: tuple[str, str]) -> bool:
        return any(status(k, c, s) != "unsupported" for k in pair)

    # Summary: passes per client and broker, of the scenarios the client supports.
    lines += ["| client | " + " | ".join(BROKER_NAMES[k] for k in shown) + " |",
              "|" + "---|" * (len(shown) + 1)]
    for c in clients:
        cells = []
        for pair in pairs:
            n = sum(supported(c, s, pair) for s in data["scenarios"])
            cells += [f"{sum(status(k, c, s) == 'pass' for s in data['scenarios'])} of {n}"
                      if k in ran else "·" for k in pair]
        lines.append(f"| {c} {clients[c]} | " + " | ".join(cells) + " |")
    lines += ["| **all** | " + " | ".join(
        f"{sum(status(k, c, s) == 'pass' for c in clients for s in data['scenarios'])} of "
        f"{sum(supported(c, s, pair) for c in clients for s in data['scenarios'])}" if k in ran else "·"
        for pair in pairs for k in pair) + " |", ""]

    header = "| scenario | " + " | ".join(f"{c}<br>{clients[c]}" for c in clients) + " |"
    lines += [header, "|" + "---|" * (len(clients) + 1)]
    for s in data["scenarios"]:
        cells = []
        for c in clients:
            parts = [f"{SYMBOL[status(pair[0], c, s)]} / {SYMBOL[status(pair[1], c, s)]}"
                     if supported(c, s, pair) else "—" for pair in pairs]
            cells.append("—" if all(p == "—" for p in parts) else " · ".join(parts))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "## Broker settings (one node, both brokers)", ""]
    lines += [f"- `{k}={v}`" for k, v in data["settings"].items()]
    if "cluster_settings" in data and PAIRS[1] in pairs:
        lines += ["", f"## Cluster settings ({CLUSTER_NODES} nodes, both brokers): the above, but", ""]
        lines += [f"- `{k}={v}`" for k, v in data["cluster_settings"].items() if data["settings"].get(k) != v]
        lines += ["", "Every topic a scenario creates has replication factor 3 (`COMPAT_REPLICATION_FACTOR=3`); "
                  "clients get the bootstrap list of the three nodes."]
    if PAIRS[2] in pairs:
        lines += ["", "## SASL_SSL column (one node, both brokers): the one-node settings, and", "",
                  "- a listener `SASL_SSL` next to PLAINTEXT (PLAINTEXT only for set-up): "
                  f"`listener.name.sasl_ssl.sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}`, "
                  "each mechanism's `sasl.jaas.config` the ScramLoginModule, "
                  "`listener.name.sasl_ssl.ssl.keystore.type=PEM` with `ssl.keystore.location` a key and "
                  "certificate chain from a CA the run makes (`kbroker/testing/certs.py`);",
                  f"- one user, `{SASL_USER}`, given SCRAM-SHA-256 and SCRAM-SHA-512 credentials with "
                  "AlterUserScramCredentials; clients log in with "
                  f"{SASL_MECHANISMS[0]} and trust the run's CA (COMPAT_SECURITY_PROTOCOL, COMPAT_SASL_* "
                  "and COMPAT_SSL_CA in their environment)."]
    failures = [(k, c, s, r) for k in ran for c, rs in data["results"][k].items()
                for s, r in rs.items() if r.get("status") in ("fail", "timeout")]
    if failures:
        lines += ["", "## Failures", ""]
        for k, c, s, r in failures:
            lines.append(f"- {k} / {c} / {s}: {(r.get('error') or '').replace('|', '/')[:200]}")
    (out_dir / "MATRIX.md").write_text("\n".join(lines) + "\n")
