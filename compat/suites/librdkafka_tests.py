#!/usr/bin/env python3
"""Run librdkafka's own test suite (tests/0xxx, the broker tests) against a broker.

    .venv/bin/python compat/suites/librdkafka_tests.py [--broker kbroker|kafka|both]
                                                       [--bootstrap HOST:PORT] [--tests 0001,0012] [--write]
                                                       [--build-only]

The suite comes from Debian's source package of librdkafka (the version kcat links, via
`apt-get source`; when no deb-src entry is configured the script adds one for Debian's main
archive, as root). It is built once into .cache/librdkafka-<version>/ (library + tests/test-runner,
about 5 minutes on 2 cores) and run in quick mode (-Q), two tests at a time (-p2), without the
socket-emulation tests (-E) and without the local-only tests (-L), with bootstrap.servers pointing
at the broker. Both brokers run with the matrix's settings, except that topic auto-creation stays
on and num.partitions is 4 (the suite relies on both). Results are compared with librdkafka-expected.json (tests
expected to pass on kbroker); exit 1 on any difference. --write refreshes LIBRDKAFKA.md's results
table and, for kbroker, the expectations file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "compat"))
import run_matrix  # noqa: E402

EXPECTED = HERE / "librdkafka-expected.json"
REPORT = HERE / "LIBRDKAFKA.md"
CACHE = ROOT / ".cache"
DEB_SRC = Path("/etc/apt/sources.list.d/kbroker-deb-src.sources")
# The suite expects auto-created topics and num.partitions=4 (its tests produce to partitions 0-3).
# Its authorisation tests (0115 producer, 0119 consumer) add DENY ACLs with kafka-acls.sh, so both
# brokers run Kafka's StandardAuthorizer, allowing everything no ACL names (as the suite's own
# trivup clusters do).
SETTINGS = {**run_matrix.BROKER_SETTINGS, "auto.create.topics.enable": "true", "num.partitions": "4",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true"}
# The Kafka tools the suite runs as $KAFKA_PATH/bin/<script> (test_kafka_cmd), from Kafka 4.4's jars.
KAFKA_SCRIPTS = {"kafka-acls.sh": "org.apache.kafka.tools.AclCommand",
                 "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
                 "kafka-configs.sh": "org.apache.kafka.tools.ConfigCommand"}


def kafka_path() -> Path:
    """A KAFKA_PATH whose bin/ has the scripts the suite calls, each running Kafka 4.4's tool."""
    import shlex

    home = CACHE / "librdkafka-kafka-path"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    for script, main_class in KAFKA_SCRIPTS.items():
        cmd = run_matrix.reference_kafka.tool_command(main_class, [], heap="256m")
        path = home / "bin" / script
        path.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(c) for c in cmd) + ' "$@"\n')
        path.chmod(0o755)
    return home


def log(msg: str) -> None:
    print(f"[librdkafka] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str] | str, **kw) -> None:
    subprocess.run(cmd, check=True, shell=isinstance(cmd, str), **kw)


def ensure_suite() -> Path:
    """Fetch (Debian source package) and build librdkafka's test-runner; return its tests dir."""
    found = sorted(CACHE.glob("librdkafka-[0-9]*/tests/test-runner"))
    if found:
        return found[-1].parent
    root = os.geteuid() == 0
    # Debian packages the fetch and the build need (scripts/install-test-tools installs them too).
    need = {"dpkg-source": "dpkg-dev", "make": "make", "gcc": "gcc", "g++": "g++"}
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    if missing:
        if not root:
            raise RuntimeError(f"missing tools to build librdkafka's suite; install the Debian packages: "
                               f"{' '.join(missing)} (or run scripts/install-test-tools)")
        log(f"installing {' '.join(missing)}")
        sh(["apt-get", "update", "-qq"])
        sh(["apt-get", "install", "-y", "-qq", *missing], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    work = Path(tempfile.mkdtemp(prefix="librdkafka-src-", dir=CACHE if CACHE.exists() else None))
    try:
        res = subprocess.run(["apt-get", "source", "--download-only", "-qq", "librdkafka"], cwd=work,
                             capture_output=True, text=True)
        if res.returncode != 0:
            if not root:
                raise RuntimeError(f"apt-get source failed and not root to add deb-src: {res.stderr}")
            log(f"adding {DEB_SRC} (deb-src for Debian's main archive)")
            DEB_SRC.write_text("Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
                               "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
            sh(["apt-get", "update", "-qq"])
            sh(["apt-get", "source", "--download-only", "-qq", "librdkafka"], cwd=work)
        orig = next(work.glob("librdkafka_*.orig.tar.gz"))
        version = orig.name.split("_")[1].split(".orig")[0]
        dest = CACHE / f"librdkafka-{version}"
        shutil.rmtree(dest, ignore_errors=True)
        sh(["tar", "xzf", str(orig), "-C", str(work)])
        shutil.move(str(work / f"librdkafka-{version}"), dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"building librdkafka {version} and its test-runner (a few minutes)")
    jobs = str(os.cpu_count() or 2)
    # mklove's ./configure loads every ./configure.* file in its directory as a module: its output must
    # not go to a configure.<anything> file there (an empty configure.log stops it with "Module log not
    # found (required by base) and downloads disabled").
    with open(dest / "kbroker-configure.txt", "wb") as out:
        sh(["./configure", "--disable-ssl", "--disable-gssapi", "--disable-curl", "--disable-sasl"],
           cwd=dest, stdout=out, stderr=subprocess.STDOUT)
    sh(["make", f"-j{jobs}", "libs"], cwd=dest, stdout=subprocess.DEVNULL)
    sh(["make", f"-j{jobs}", "build"], cwd=dest / "tests", stdout=subprocess.DEVNULL)
    return dest / "tests"


def run_suite(tests_dir: Path, bootstrap: str, tests: str | None, timeout: float) -> tuple[dict, float]:
    conf = Path(tempfile.mkstemp(prefix="rdk-test-", suffix=".conf")[1])
    # test.timeout.multiplier: the authorisation tests start Kafka's kafka-acls.sh (a JVM, 5-15 s on two
    # loaded cores) two or three times within their 30 s budget.
    conf.write_text(f"bootstrap.servers={bootstrap}\ntest.timeout.multiplier=3\n")
    env = dict(os.environ, LD_LIBRARY_PATH=f"{tests_dir.parent / 'src'}:{tests_dir.parent / 'src-cpp'}",
               RDKAFKA_TEST_CONF=str(conf), TEST_KAFKA_VERSION="3.9.0", KAFKA_PATH=str(kafka_path()))
    if tests:
        env["TESTS"] = tests
    before = set(glob.glob(str(tests_dir / "test_report_*.json")))
    t0 = time.monotonic()
    logf = open(tests_dir / "last-run.log", "wb")
    try:
        subprocess.run(["./test-runner", "-L", "-Q", "-E", "-p2", "-r"], cwd=tests_dir, env=env,
                       stdout=logf, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"suite timed out after {timeout:.0f}s")
    finally:
        logf.close()
        conf.unlink(missing_ok=True)
    secs = time.monotonic() - t0
    reports = sorted(set(glob.glob(str(tests_dir / "test_report_*.json"))) - before, key=os.path.getmtime)
    for f in glob.glob(str(tests_dir / "stats_*.json")):
        os.unlink(f)
    if not reports:
        return {}, secs
    data = json.loads(Path(reports[-1]).read_text())
    results = {}
    for name, t in (data.get("tests") or {}).items():
        results[name] = {"status": str(t.get("state", "?")).lower(), "seconds": t.get("duration")}
    return results, secs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=["kbroker", "kafka", "both"], default="kbroker")
    ap.add_argument("--bootstrap", help="use a running broker instead of starting one")
    ap.add_argument("--tests", help="TESTS filter of the test-runner, e.g. 0001,0012")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="fetch and build the suite, run nothing")
    args = ap.parse_args(argv)
    tests_dir = ensure_suite()
    if args.build_only:
        log(f"suite ready: {tests_dir / 'test-runner'}")
        return 0
    kinds = ["kbroker", "kafka"] if args.broker == "both" else [args.broker]
    out: dict[str, dict] = {}
    info: dict[str, str] = {}
    for kind in kinds:
        broker = None
        if args.bootstrap:
            bootstrap = args.bootstrap
        elif kind == "kafka":
            broker = run_matrix.reference_kafka.start_reference_kafka(None, SETTINGS)
            bootstrap = broker.bootstrap
        else:
            broker = run_matrix.KBroker(SETTINGS)
            bootstrap = broker.bootstrap
        try:
            results, secs = run_suite(tests_dir, bootstrap, args.tests, args.timeout)
        finally:
            if broker is not None:
                broker.stop()
        counts = {s: sum(r["status"] == s for r in results.values()) for s in ("passed", "failed", "skipped")}
        info[kind] = (f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
                      f"of {len(results)} in {secs:.0f} s")
        log(f"{kind}: {info[kind]}")
        out[kind] = results
    rc = 0
    if "kbroker" in out and EXPECTED.exists() and not args.tests:
        exp = json.loads(EXPECTED.read_text())
        flaky = set(exp.get("flaky", {}))
        want = set(exp["expected_pass"]) - flaky
        got = {t for t, r in out["kbroker"].items() if r["status"] == "passed"} - flaky
        for t in sorted(want - got):
            log(f"expected to pass on kbroker, did not: {t} ({out['kbroker'].get(t, {}).get('status')})")
        for t in sorted(got - want):
            log(f"now passing on kbroker (add to {EXPECTED.name}): {t}")
        rc = 1 if want != got else 0
    if args.write:
        write_report(out, info, tests_dir.parent.name)
        if "kbroker" in out and not args.tests:
            flaky = json.loads(EXPECTED.read_text()).get("flaky", {}) if EXPECTED.exists() else {}
            EXPECTED.write_text(json.dumps({
                "comment": "librdkafka tests/ expected to pass on kbroker (compat/suites/librdkafka_tests.py); "
                           "flaky: tests not compared, with the reason",
                "librdkafka": tests_dir.parent.name,
                "flaky": flaky,
                "expected_pass": sorted(t for t, r in out["kbroker"].items()
                                        if r["status"] == "passed" and t not in flaky),
            }, indent=1) + "\n")
            rc = 0
    return rc


def write_report(out: dict, info: dict, version: str) -> None:
    text = REPORT.read_text() if REPORT.exists() else "# librdkafka test suite\n"
    marker = "<!-- results -->"
    head = text.split(marker)[0].rstrip() + "\n\n" + marker + "\n"
    kinds = [k for k in ("kbroker", "kafka") if k in out]
    lines = [f"## Results ({version}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", ""]
    lines += [f"- **{k}**: {info[k]}" for k in kinds]
    lines += ["", "Tests that did not pass on every broker run:", "", "| test | " + " | ".join(kinds) + " |",
              "|---|" + "---|" * len(kinds)]
    for t in sorted({t for k in kinds for t in out[k]}):
        st = [out[k].get(t, {}).get("status", "-") for k in kinds]
        if any(s != "passed" for s in st):
            lines.append(f"| {t} | " + " | ".join(st) + " |")
    REPORT.write_text(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
