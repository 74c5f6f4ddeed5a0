#!/usr/bin/env python3
"""Run librdkafka's own test suite (tests/0xxx, the broker tests) against a broker.

    .venv/bin/python compat/suites/librdkafka_tests.py [--broker kbroker|kafka|both]
                                                       [--bootstrap HOST:PORT] [--tests 0001,0012] [--write]
                                                       [--build-only] [--security MODE,...|all [--full]]

The suite comes from Debian's source package of librdkafka (the version kcat links, via
`apt-get source`; when no deb-src entry is configured the script adds one for Debian's main
archive, as root). It is built once into .cache/librdkafka-<version>/ (library + tests/test-runner,
without optimisation: about 100 s of CPU) and run in quick mode (-Q), two tests at a time (-p2), without the
socket-emulation tests (-E) and without the local-only tests (-L), with bootstrap.servers pointing
at the broker. Both brokers run with the matrix's settings, except that topic auto-creation stays
on and num.partitions is 4 (the suite relies on both). Results are compared with librdkafka-expected.json (tests
expected to pass on kbroker); exit 1 on any difference. --write refreshes LIBRDKAFKA.md's results
table and, for kbroker, the expectations file.

The suite is built with SSL (OpenSSL: librdkafka's SSL and its SASL SCRAM; PLAIN and OAUTHBEARER
are built in; no GSSAPI, no libcurl). --security runs it over SASL (compat/suites/librdkafka_security.py):
one broker of each kind with SASL_SSL and SASL_PLAINTEXT listeners, the suite's test.conf naming
the listener, mechanism and credentials of each mode, and for SSL the SSL_* client key and
certificates trivup would give it; by default the SASL test set (SASL_TESTS), compared with
librdkafka-sasl-expected.json per mode; --full runs every test; --write records the results in
LIBRDKAFKA.md (and the expectations).
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

sys.path.insert(0, str(HERE))
import librdkafka_security as security  # noqa: E402

EXPECTED = HERE / "librdkafka-expected.json"
SASL_EXPECTED = HERE / "librdkafka-sasl-expected.json"
# The SASL test set: librdkafka's SASL and SSL tests that run against a broker (0097_ssl_verify: the
# client's key and certificates in every form, and a certificate verification callback refusing the
# broker; 0135_sasl_credentials: a failed login, then sasl_set_credentials and a successful one) and
# produce/consume, group, admin and idempotence tests over the authenticated connection.
SASL_TESTS = ["0001_multiobj", "0002_unkpart", "0005_order", "0012_produce_consume", "0013_null_msgs",
              "0030_offset_commit", "0035_api_version", "0063_clusterid", "0073_headers", "0090_idempotence",
              "0097_ssl_verify", "0099_commit_metadata", "0135_sasl_credentials"]
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
    if found and built_with_security(found[-1].parent.parent):
        return found[-1].parent
    root = os.geteuid() == 0
    # Debian packages the fetch and the build need (scripts/install-test-tools installs them too).
    need = {"dpkg-source": "dpkg-dev", "make": "make", "gcc": "gcc", "g++": "g++"}
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    # OpenSSL's headers: librdkafka's SSL and SASL SCRAM (PLAIN and OAUTHBEARER are built in).
    if not Path("/usr/include/openssl/ssl.h").exists():
        missing.append("libssl-dev")
    if missing:
        if not root:
            raise RuntimeError(f"missing tools to build librdkafka's suite; install the Debian packages: "
                               f"{' '.join(missing)} (or run scripts/install-test-tools)")
        log(f"installing {' '.join(missing)}")
        sh(["apt-get", "update", "-qq"])
        sh(["apt-get", "install", "-y", "-qq", *missing], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if found:  # an earlier build without SSL/SASL: configure and build it again
        return build_suite(found[-1].parent.parent)
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
    return build_suite(dest)


def built_with_security(src: Path) -> bool:
    """True when the build in ``src`` has SSL and SASL SCRAM/OAUTHBEARER (the suite's SASL runs)."""
    try:
        config = (src / "config.h").read_text()
    except OSError:
        return False
    return all(f"#define {flag} 1" in config for flag in ("WITH_SSL", "WITH_SASL_SCRAM", "WITH_SASL_OAUTHBEARER"))


def build_suite(dest: Path) -> Path:
    """Configure (with SSL, so SASL SCRAM too; without GSSAPI and libcurl) and build ``dest``, without
    the compiler's optimisation (-O0, librdkafka's --disable-optimization): half the CPU of the -O2
    build (99 s against 191 s of CPU, the library and test-runner on this machine), and the suite
    drives a broker, so the client's own speed is not what it measures."""
    log(f"building {dest.name} and its test-runner with SSL and SASL (a few minutes)")
    jobs = str(os.cpu_count() or 2)
    # mklove's ./configure loads every ./configure.* file in its directory as a module: its output must
    # not go to a configure.<anything> file there (an empty configure.log stops it with "Module log not
    # found (required by base) and downloads disabled").
    with open(dest / "kbroker-configure.txt", "wb") as out:
        sh(["./configure", "--enable-ssl", "--disable-gssapi", "--disable-curl", "--disable-optimization"],
           cwd=dest, stdout=out, stderr=subprocess.STDOUT)
    if not built_with_security(dest):
        raise RuntimeError(f"librdkafka configured without SSL/SASL SCRAM: see {dest / 'kbroker-configure.txt'}")
    sh(["make", "clean"], cwd=dest, stdout=subprocess.DEVNULL)
    sh(["make", f"-j{jobs}", "libs"], cwd=dest, stdout=subprocess.DEVNULL)
    sh(["make", f"-j{jobs}", "build"], cwd=dest / "tests", stdout=subprocess.DEVNULL)
    return dest / "tests"


def run_suite(tests_dir: Path, bootstrap: str, tests: str | None, timeout: float,
              conf_text: str | None = None, extra_env: dict[str, str] | None = None) -> tuple[dict, float]:
    """Run the suite; ``conf_text`` replaces the test.conf's connection lines (bootstrap.servers and
    any security settings), ``extra_env`` is added to its environment."""
    conf = Path(tempfile.mkstemp(prefix="rdk-test-", suffix=".conf")[1])
    # test.timeout.multiplier: the authorisation tests start Kafka's kafka-acls.sh (a JVM, 5-15 s on two
    # loaded cores) two or three times within their 30 s budget.
    conf.write_text((conf_text or f"bootstrap.servers={bootstrap}\n") + "test.timeout.multiplier=3\n")
    env = dict(os.environ, LD_LIBRARY_PATH=f"{tests_dir.parent / 'src'}:{tests_dir.parent / 'src-cpp'}",
               RDKAFKA_TEST_CONF=str(conf), TEST_KAFKA_VERSION="3.9.0", KAFKA_PATH=str(kafka_path()),
               **(extra_env or {}))
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
    if not reports:  # the runner stopped before its report (it can, after failures): read its log
        return results_from_log(tests_dir / "last-run.log"), secs
    data = json.loads(Path(reports[-1]).read_text())
    results = {}
    for name, t in (data.get("tests") or {}).items():
        results[name] = {"status": str(t.get("state", "?")).lower(), "seconds": t.get("duration")}
    return results, secs


def results_from_log(path: Path) -> dict:
    """Each test's outcome as the runner's log tells it ("Test X PASSED", "### Test "X" failed")."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", path.read_text(errors="replace"))
    results: dict[str, dict] = {}
    for name in re.findall(r"={5,} Test (\w+) PASSED ={5,}", text):
        results[name] = {"status": "passed", "seconds": None}
    for name in re.findall(r'### Test "(\w+)" failed', text):
        results[name] = {"status": "failed", "seconds": None}
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", choices=["kbroker", "kafka", "both"], default="kbroker")
    ap.add_argument("--bootstrap", help="use a running broker instead of starting one")
    ap.add_argument("--tests", help="TESTS filter of the test-runner, e.g. 0001,0012")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--build-only", action="store_true", help="fetch and build the suite, run nothing")
    ap.add_argument("--security", help="comma-separated modes (or all): " + ", ".join(security.MODES)
                    + "; runs the SASL test set (or --tests, or every test with --full) over each mode")
    ap.add_argument("--full", action="store_true", help="with --security: every test, not the SASL set")
    args = ap.parse_args(argv)
    tests_dir = ensure_suite()
    if args.build_only:
        log(f"suite ready: {tests_dir / 'test-runner'}")
        return 0
    if args.security:
        modes = list(security.MODES) if args.security == "all" else args.security.split(",")
        unknown = [m for m in modes if m not in security.MODES]
        if unknown:
            ap.error(f"unknown --security mode(s) {unknown}: choose from {', '.join(security.MODES)}")
        return main_security(args, tests_dir, modes)
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


def main_security(args: argparse.Namespace, tests_dir: Path, modes: list[str]) -> int:
    """The suite over SASL (and TLS): for each broker one SecureBroker, each mode run in turn."""
    kinds = ["kbroker", "kafka"] if args.broker == "both" else [args.broker]
    tests = None if args.full else (args.tests or ",".join(t[:4] for t in SASL_TESTS))
    out: dict[str, dict[str, dict]] = {}
    info: dict[str, str] = {}
    for kind in kinds:
        broker = security.SecureBroker(kind, SETTINGS)
        try:
            for mode in modes:
                results, secs = run_suite(tests_dir, "", tests, args.timeout, broker.test_conf(mode),
                                          broker.env(mode))
                counts = {s: sum(r["status"] == s for r in results.values()) for s in ("passed", "failed", "skipped")}
                key = f"{kind} {mode}"
                info[key] = (f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
                             f"of {len(results)} in {secs:.0f} s")
                log(f"{key}: {info[key]}")
                out[key] = results
        finally:
            broker.stop()
    rc = 0
    exp = json.loads(SASL_EXPECTED.read_text()) if SASL_EXPECTED.exists() else {}
    if not args.full and not args.tests:
        for mode in modes:
            key = f"kbroker {mode}"
            if key not in out or mode not in exp.get("expected_pass", {}):
                continue
            want = set(exp["expected_pass"][mode])
            got = {t for t, r in out[key].items() if r["status"] == "passed" and t != "<MAIN>"}
            for t in sorted(want - got):
                log(f"{mode}: expected to pass on kbroker, did not: {t} ({out[key].get(t, {}).get('status')})")
            for t in sorted(got - want):
                log(f"{mode}: now passing on kbroker (add to {SASL_EXPECTED.name}): {t}")
            rc |= int(want != got)
    if args.write:
        write_sasl_report(out, info, tests_dir.parent.name, "every test" if args.full else (args.tests or "SASL set"))
        if not args.full and not args.tests:
            want_all = exp.get("expected_pass", {})
            for mode in modes:
                if f"kbroker {mode}" in out:
                    want_all[mode] = sorted(t for t, r in out[f"kbroker {mode}"].items()
                                            if r["status"] == "passed" and t != "<MAIN>")
            SASL_EXPECTED.write_text(json.dumps({
                "comment": "librdkafka tests/ expected to pass on kbroker per --security mode "
                           "(compat/suites/librdkafka_tests.py --security)",
                "librdkafka": tests_dir.parent.name, "expected_pass": want_all}, indent=1) + "\n")
            rc = 0
    return rc


def write_sasl_report(out: dict, info: dict, version: str, which: str) -> None:
    """Rewrite LIBRDKAFKA.md's SASL results section (between its two markers, before the results)."""
    text = REPORT.read_text()
    kind = "full" if which == "every test" else "set"  # one section for each: the SASL set, a full run
    start, end = f"<!-- sasl results {kind} -->", f"<!-- /sasl results {kind} -->"
    keys = list(out)
    lines = [start, f"### SASL results ({version}, {which}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", f"`{' '.join(['compat/suites/librdkafka_tests.py', *sys.argv[1:]])}`", ""]
    lines += [f"- **{k}**: {info[k]}" for k in keys]
    lines += ["", "| test | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for t in sorted({t for k in keys for t in out[k]} - {"<MAIN>"}):
        st = [out[k].get(t, {}).get("status", "-") for k in keys]
        if not {"passed", "failed"} & set(st):  # skipped everywhere (or not reached): left out
            continue
        lines.append(f"| {t} | " + " | ".join(st) + " |")
    lines += ["", "(`-`: not reached, the runner stopped after failures; tests skipped or not reached in every "
              "run are left out.)", end]
    section = "\n".join(lines)
    if start in text and end in text:
        text = text.split(start)[0] + section + text.split(end, 1)[1]
    else:
        head, sep, tail = text.partition("<!-- results -->")
        text = head + section + "\n\n" + sep + tail
    REPORT.write_text(text)


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
