#!/usr/bin/env python3
"""Run franz-go's own pkg/kgo test suite (unit + integration tests) against a broker.

    .venv/bin/python compat/suites/franz_kgo.py [--broker kbroker|kafka|both] [--bootstrap HOST:PORT]
                                                [--records N] [--run REGEX] [--write]

The suite comes from the Go module proxy (github.com/twmb/franz-go at the version compat/go/go.mod
requires) and is run with `go test github.com/twmb/franz-go/pkg/kgo -json` from compat/go, with
KGO_SEEDS pointing at the broker, KGO_TEST_RF=1 (one node) and KGO_TEST_RECORDS (default 10000,
the suite's own default of 500000 is for a real cluster). Brokers are started as by
compat/run_matrix.py, with the same settings. Results are compared with franz-kgo-expected.json
(the tests expected to pass on kbroker; reasons for the others in FRANZ-KGO.md): exit 1 on any
difference in either direction. --write refreshes FRANZ-KGO.md's results table and, for kbroker,
the expectations file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "compat"))
import run_matrix  # noqa: E402

EXPECTED = HERE / "franz-kgo-expected.json"
REPORT = HERE / "FRANZ-KGO.md"


# The suite's SCRAM and OAUTHBEARER tests (TestSCRAMAuth, TestSCRAMAuthBadCredentials, TestOAuthAuth)
# run against their own listeners: both brokers get the same two SASL_PLAINTEXT listeners next to
# PLAINTEXT, set up with Kafka's keys, and a SCRAM-SHA-256 user made with AlterUserScramCredentials.
SASL_LISTENERS = {"SCRAM": "SASL_PLAINTEXT", "OAUTH": "SASL_PLAINTEXT"}
SASL_SETTINGS = {
    "listener.name.scram.sasl.enabled.mechanisms": "SCRAM-SHA-256",
    "listener.name.scram.scram-sha-256.sasl.jaas.config":
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
    "listener.name.oauth.oauthbearer.sasl.jaas.config":
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
}
SCRAM_USER, SCRAM_PASSWORD = "kgo-scram", "kgo-scram-secret"


def sasl_env(broker) -> dict[str, str]:
    ports = broker.listener_ports
    return {"KGO_TEST_SCRAM": f"{SCRAM_USER}:{SCRAM_PASSWORD}",
            "KGO_TEST_SCRAM_SEEDS": f"127.0.0.1:{ports['SCRAM']}",
            "KGO_TEST_OAUTH_SEEDS": f"127.0.0.1:{ports['OAUTH']}"}


def start_broker(kind: str):
    """A broker of ``kind`` with the SASL listeners and user, and the suite's environment for them."""
    cls = {"kbroker": run_matrix.KBroker, "kafka": run_matrix.KafkaNode}[kind]
    broker = cls({**run_matrix.settings_for(kind), **SASL_SETTINGS}, extra_listeners=SASL_LISTENERS)
    try:
        run_matrix.add_scram_user(broker.bootstrap, SCRAM_USER, SCRAM_PASSWORD, ["SCRAM-SHA-256"])
    except BaseException:
        broker.stop()
        raise
    return broker, sasl_env(broker)


def run_suite(bootstrap: str, records: int, run: str | None, timeout: float,
              extra_env: dict[str, str] | None = None) -> tuple[dict, float, str]:
    env = dict(os.environ, KGO_SEEDS=bootstrap, KGO_TEST_RF="1", KGO_TEST_RECORDS=str(records),
               KGO_LOG_LEVEL="none", **(extra_env or {}))
    cmd = ["go", "test", "github.com/twmb/franz-go/pkg/kgo", "-count=1", "-json", f"-timeout={int(timeout)}s"]
    if run:
        cmd.append(f"-run={run}")
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT / "compat" / "go", env=env, capture_output=True, text=True)
    results: dict[str, dict] = {}
    output: dict[str, list[str]] = {}
    for line in res.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        t = e.get("Test")
        if not t:
            continue
        top = t.split("/")[0]
        if e.get("Action") == "output":
            output.setdefault(top, []).append(e.get("Output", ""))
        if "/" not in t and e.get("Action") in ("pass", "fail", "skip"):
            results[t] = {"status": e["Action"], "seconds": e.get("Elapsed")}
            if e["Action"] == "fail":
                lines = [x.rstrip() for x in output.get(top, []) if x.strip() and not x.startswith("=== ")]
                results[t]["output"] = lines[-12:]
                print(f"[kgo] FAIL {t}:\n  " + "\n  ".join(lines[-12:]), file=sys.stderr)
    return results, time.monotonic() - t0, res.stderr[-2000:]


def suite_version() -> str:
    out = subprocess.run(["go", "list", "-m", "-f", "{{.Version}}", "github.com/twmb/franz-go"],
                         cwd=ROOT / "compat" / "go", capture_output=True, text=True)
    return out.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=["kbroker", "kafka", "both"], default="kbroker")
    ap.add_argument("--bootstrap", help="use a running broker instead of starting one (label: --broker)")
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--run", help="only tests matching this regex (go test -run)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--write", action="store_true", help="refresh FRANZ-KGO.md (and the kbroker expectations)")
    args = ap.parse_args(argv)
    if shutil.which("go") is None:
        print("[kgo] the Go toolchain (go, the version compat/go/go.mod names) is not on PATH; "
              "see README.md, 'What the test command needs'", file=sys.stderr)
        return 2
    kinds = ["kbroker", "kafka"] if args.broker == "both" else [args.broker]
    out: dict[str, dict] = {}
    info: dict[str, str] = {}
    for kind in kinds:
        broker = None
        extra_env: dict[str, str] = {}
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            broker, extra_env = start_broker(kind)
            bootstrap = broker.bootstrap
        try:
            results, secs, err = run_suite(bootstrap, args.records, args.run, args.timeout, extra_env)
        finally:
            if broker is not None:
                broker.stop()
        if not results:
            print(f"[kgo] {kind}: no test results; go test said:\n{err}", file=sys.stderr)
        counts = {s: sum(r["status"] == s for r in results.values()) for s in ("pass", "fail", "skip")}
        info[kind] = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped in {secs:.0f} s"
        print(f"[kgo] {kind}: {info[kind]}", file=sys.stderr)
        out[kind] = results
    rc = 0
    if "kbroker" in out and EXPECTED.exists() and not args.run:
        exp = json.loads(EXPECTED.read_text())
        want = set(exp["expected_pass"])
        flaky = set(exp.get("flaky", {}))
        got = {t for t, r in out["kbroker"].items() if r["status"] == "pass"} - flaky
        want -= flaky
        skipped = {t for t, r in out["kbroker"].items() if r["status"] == "skip"}
        newly_failing = sorted(want - got - skipped)
        newly_passing = sorted(got - want)
        for t in newly_failing:
            print(f"[kgo] expected to pass on kbroker, did not: {t}", file=sys.stderr)
        for t in newly_passing:
            print(f"[kgo] now passing on kbroker (add to {EXPECTED.name}): {t}", file=sys.stderr)
        rc = 1 if (newly_failing or newly_passing) else 0
    if args.write:
        write_report(out, info)
        if "kbroker" in out and not args.run:
            flaky = json.loads(EXPECTED.read_text()).get("flaky", {}) if EXPECTED.exists() else {}
            EXPECTED.write_text(json.dumps({
                "comment": "franz-go pkg/kgo tests expected to pass on kbroker (compat/suites/franz_kgo.py); "
                           "flaky: tests not compared, with the reason",
                "franz_go": suite_version(),
                "flaky": flaky,
                "expected_pass": sorted(t for t, r in out["kbroker"].items()
                                        if r["status"] == "pass" and t not in flaky),
            }, indent=1) + "\n")
            rc = 0
    return rc


def write_report(out: dict, info: dict) -> None:
    text = REPORT.read_text() if REPORT.exists() else "# franz-go pkg/kgo suite\n"
    marker = "<!-- results -->"
    head = text.split(marker)[0].rstrip() + "\n\n" + marker + "\n"
    kinds = [k for k in ("kbroker", "kafka") if k in out]
    lines = [f"## Results (franz-go {suite_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", ""]
    lines += [f"- **{k}**: {info[k]}" for k in kinds]
    lines += ["", "Tests that did not pass on every broker run:", "", "| test | " + " | ".join(kinds) + " |",
              "|---|" + "---|" * len(kinds)]
    tests = sorted({t for k in kinds for t in out[k]})
    for t in tests:
        st = [out[k].get(t, {}).get("status", "-") for k in kinds]
        if any(s != "pass" for s in st):
            lines.append(f"| {t} | " + " | ".join(st) + " |")
    REPORT.write_text(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
