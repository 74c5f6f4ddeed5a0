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
import importlib.util
import json
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "compat"
CACHE = ROOT / ".cache"
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def _load_reference_kafka():
    spec = importlib.util.spec_from_file_location("reference_kafka", ROOT / "scripts" / "reference_kafka.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["reference_kafka"] = mod
    spec.loader.exec_module(mod)
    return mod


reference_kafka = _load_reference_kafka()

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
SCENARIOS = [f"produce_consume_{c}" for c in CODECS] + [
    "keyed_ordering",
    "headers_timestamps",
    "group_three_leave",
    "commit_resume",
    "admin_topics",
    "offsets_by_timestamp",
    "idempotent_producer",
    "transactions_read_committed",
    "record_at_size_limit",
    "record_beyond_size_limit",
    "unknown_topic",
    "share_group_two_consumers",
    "share_group_dead_letters",
]

# Both brokers get exactly these settings. Topic auto-creation is off for the whole run: every
# scenario creates its topics with an admin client, and `unknown_topic` checks that producing to
# a missing topic fails and does not create it. message.max.bytes stays at Kafka's default.
BROKER_SETTINGS: dict[str, str] = {
    **reference_kafka.TEST_SETTINGS,
    "auto.create.topics.enable": "false",
}

# The cluster column: three nodes, everything replicated three times, acks=all needing two
# in-sync replicas; the same on both brokers.
CLUSTER_NODES = 3
CLUSTER_SETTINGS: dict[str, str] = {
    **BROKER_SETTINGS,
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}

# The cluster column in the test suite (tests/compat/test_matrix.py), against kbroker only: the
# scenarios a cluster changes something for (replication and acks=all, partitions led by different
# brokers, group and transaction coordinators and their markers on other brokers, the high
# watermark, a 1 MiB batch replicated, topic administration with three replicas), with every
# client. The codec, headers, beyond-the-limit and unknown-topic scenarios add nothing there to
# their one-node runs. The whole column: `compat/run_matrix.py --broker cluster`.
CLUSTER_CI_SCENARIOS = [
    "produce_consume_none",
    "keyed_ordering",
    "group_three_leave",
    "commit_resume",
    "admin_topics",
    "offsets_by_timestamp",
    "idempotent_producer",
    "transactions_read_committed",
    "record_at_size_limit",
]

# The security column: one node each whose clients connect over SASL_SSL (TLS with a CA the run
# makes, SCRAM logins), the rest of the settings as the one-node column.
SASL_MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_USER, SASL_PASSWORD = "compat-user", "compat-secret"
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"

# The security column in the test suite (tests/compat/test_matrix.py), against kbroker only: every
# client logs in over SASL_SSL and runs a compressed produce/consume, a group commit and resume,
# topic administration and a transaction. The whole column: `compat/run_matrix.py --broker sasl`.
SASL_CI_SCENARIOS = ["produce_consume_lz4", "commit_resume", "admin_topics", "transactions_read_committed"]

KINDS = ["kbroker", "kafka", "kbroker-cluster", "kafka-cluster", "kbroker-sasl", "kafka-sasl"]
ALIASES = {"both": ["kbroker", "kafka"], "cluster": ["kbroker-cluster", "kafka-cluster"],
           "sasl": ["kbroker-sasl", "kafka-sasl"], "all": KINDS}
BROKER_NAMES = {
    "kbroker": "kbroker (1 node)",
    "kafka": f"Apache Kafka {reference_kafka.KAFKA_VERSION} (KRaft, 1 node)",
    "kbroker-cluster": f"kbroker cluster ({CLUSTER_NODES} nodes, broker+controller each)",
    "kafka-cluster": f"Apache Kafka {reference_kafka.KAFKA_VERSION} cluster (KRaft, {CLUSTER_NODES} nodes, "
                     "broker+controller each)",
    "kbroker-sasl": "kbroker (1 node, clients over SASL_SSL with SCRAM)",
    "kafka-sasl": f"Apache Kafka {reference_kafka.KAFKA_VERSION} (KRaft, 1 node, clients over SASL_SSL with SCRAM)",
}


def is_cluster(kind: str) -> bool:
    return kind.endswith("-cluster")


def settings_for(kind: str) -> dict[str, str]:
    return CLUSTER_SETTINGS if is_cluster(kind) else BROKER_SETTINGS


def parse_kinds(spec: str) -> list[str]:
    """``--broker``: kinds and aliases, comma separated, in KINDS order, without repeats."""
    wanted: set[str] = set()
    for item in (s.strip() for s in spec.split(",")):
        if item in ALIASES:
            wanted.update(ALIASES[item])
        elif item in KINDS:
            wanted.add(item)
        else:
            raise ValueError(f"unknown broker {item!r}; known: {', '.join(KINDS + list(ALIASES))}")
    return [k for k in KINDS if k in wanted]


JAVA = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]


def client_commands() -> dict[str, list[str]]:
    jc = CACHE / "java-clients"
    return {
        "kafka-python": [PY, str(COMPAT / "python" / "kafka_python_scenarios.py")],
        "aiokafka": [PY, str(COMPAT / "python" / "aiokafka_scenarios.py")],
        "confluent-kafka": [PY, str(COMPAT / "python" / "confluent_scenarios.py")],
        "kcat": [PY, str(COMPAT / "python" / "kcat_scenarios.py")],
        "java-3.x": [*JAVA, "-cp", f"{jc / 'classes'}:{jc / '3.9'}/*", "kbroker.compat.Scenarios"],
        "java-4.x": [*JAVA, "-cp", f"{jc / 'classes'}:{jc / '4'}/*", "kbroker.compat.Scenarios"],
        "franz-go": [str(CACHE / "go-bin" / "franz")],
        "sarama": [str(CACHE / "go-bin" / "sarama")],
        "kafkajs": ["node", str(COMPAT / "node" / "scenarios.js")],
    }


CLIENTS = list(client_commands())


def log(msg: str) -> None:
    print(f"[matrix] {msg}", file=sys.stderr, flush=True)


# --- brokers ----------------------------------------------------------------------------------

class KBroker:
    """kbroker as a subprocess on a free loopback port."""

    def __init__(self, settings: dict[str, str], timeout: float = 60.0,
                 extra_listeners: dict[str, str] | None = None):
        self.workdir = Path(tempfile.mkdtemp(prefix="kbroker-matrix-"))
        self.port = reference_kafka.free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        # Extra listeners (name -> security protocol) on free ports next to PLAINTEXT.
        self.listener_ports: dict[str, int] = {}
        for name in extra_listeners or {}:
            p = reference_kafka.free_port()
            while p == self.port or p in self.listener_ports.values():
                p = reference_kafka.free_port()
            self.listener_ports[name] = p
        extra = "".join(f",{name}://127.0.0.1:{p}" for name, p in self.listener_ports.items())
        overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}{extra}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}{extra}",
            "log.dirs": str(self.workdir / "data"),
            "node.id": "1",
            **({"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT" + "".join(
                f",{name}:{proto}" for name, proto in extra_listeners.items())} if extra_listeners else {}),
            **settings,
        }
        cmd = [PY, "-m", "kbroker"]
        for k, v in overrides.items():
            cmd += ["--override", f"{k}={v}"]
        self.log_file = self.workdir / "kbroker.log"
        out = open(self.log_file, "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        out.close()
        try:
            reference_kafka.wait_ready("127.0.0.1", self.port, time.monotonic() + timeout, self.proc)
        except BaseException:
            self.stop(keep_dir=True)
            raise
        self.start_seconds = time.monotonic() - t0

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, keep_dir: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def wait_cluster_formed(addresses: list[tuple[str, int]], procs: list[subprocess.Popen], deadline: float) -> None:
    """Until every node's Metadata lists all of them (each broker registered and unfenced)."""
    n = len(addresses)
    for (host, port), proc in zip(addresses, procs, strict=True):
        last: object = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{host}:{port} exited with code {proc.returncode}")
            try:
                last = reference_kafka.metadata_brokers(host, port)
                if last == n:
                    break
            except (OSError, struct.error) as e:
                last = e
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}:{port} lists {last} brokers, not {n}")
            time.sleep(0.1)  # polling interval of a readiness loop bounded by the deadline


class KBrokerCluster:
    """``CLUSTER_NODES`` kbroker nodes in combined mode (kbroker/cluster.py's layout: node ids 1..3,
    a static voter set, free loopback ports), as child processes."""

    def __init__(self, settings: dict[str, str], timeout: float = 90.0):
        from kbroker.cluster import ClusterLayout, start_node, wait_ready

        self.workdir = Path(tempfile.mkdtemp(prefix="kbroker-matrix-cluster-"))
        t0 = time.monotonic()
        self.layout = ClusterLayout.create(self.workdir, CLUSTER_NODES, settings)
        self.bootstrap = self.layout.bootstrap()
        self.procs: dict[int, subprocess.Popen] = {}
        try:
            for node_id in self.layout.brokers:
                self.procs[node_id] = start_node(self.layout, node_id)
            for node_id, proc in self.procs.items():
                wait_ready(self.layout, node_id, proc, 0, timeout)
            wait_cluster_formed([("127.0.0.1", self.layout.ports[i][0]) for i in self.procs],
                                list(self.procs.values()), t0 + timeout)
        except BaseException:
            self.stop(keep_dir=True)
            raise
        self.start_seconds = time.monotonic() - t0

    def tail(self, n: int = 2000) -> str:
        return "\n".join(self.layout.log_path(i).read_text(errors="replace")[-n:] for i in self.procs)

    def stop(self, keep_dir: bool = False) -> None:
        # kill -9: the data is thrown away (or kept as it was, for a post-mortem).
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if not keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class KafkaCluster:
    """``CLUSTER_NODES`` Apache Kafka nodes (scripts/reference_kafka.py), registered and unfenced."""

    def __init__(self, settings: dict[str, str], timeout: float = 180.0):
        t0 = time.monotonic()
        self.cluster = reference_kafka.start_reference_kafka_cluster(CLUSTER_NODES, None, settings, timeout=timeout)
        self.workdir = self.cluster.workdir
        self.bootstrap = ",".join(f"127.0.0.1:{c}" for _, (c, _) in sorted(self.cluster.ports.items()))
        try:
            wait_cluster_formed([("127.0.0.1", c) for _, (c, _) in sorted(self.cluster.ports.items())],
                                [self.cluster.procs[i] for i in sorted(self.cluster.ports)], t0 + timeout)
        except BaseException:
            self.stop(keep_dir=True)
            raise
        self.start_seconds = time.monotonic() - t0

    def stop(self, keep_dir: bool = False) -> None:
        if keep_dir:
            self.cluster._owns_dir = False
        self.cluster.stop()


class KafkaNode:
    """One Apache Kafka node (scripts/reference_kafka.py)."""

    def __init__(self, settings: dict[str, str], extra_listeners: dict[str, str] | None = None):
        self.handle = reference_kafka.start_reference_kafka(None, settings, extra_listeners=extra_listeners)
        self.bootstrap = self.handle.bootstrap
        self.listener_ports = self.handle.listener_ports
        self.workdir = self.handle.workdir
        self.start_seconds = self.handle.start_seconds

    def stop(self, keep_dir: bool = False) -> None:
        if keep_dir:
            self.handle._owns_dir = False
        self.handle.stop()


def add_scram_user(bootstrap: str, user: str, password: str, mechanisms: list[str]) -> None:
    """Give ``user`` SCRAM credentials for each mechanism, over an unauthenticated listener, with
    AlterUserScramCredentials (as kafka-configs --add-config 'SCRAM-SHA-256=[...]' does)."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for mechanism in mechanisms:  # one mechanism of a user per request, as Kafka requires
        upsert = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 8192), password.encode())
        for future in admin.alter_user_scram_credentials([upsert], request_timeout=30).values():
            future.result()


class SaslBroker:
    """One kbroker or Kafka node whose clients connect over SASL_SSL: a SASL_SSL listener next to
    PLAINTEXT (kept for set-up only), its key store from a CA made for the run, SCRAM-SHA-256 and
    -512 logins of one user. ``bootstrap`` is the SASL_SSL address and ``client_env`` tells the
    scenario programs how to connect (COMPAT_SECURITY_PROTOCOL, COMPAT_SASL_MECHANISM,
    COMPAT_SASL_USERNAME, COMPAT_SASL_PASSWORD, COMPAT_SSL_CA)."""

    def __init__(self, kind: str, settings: dict[str, str]):
        from kbroker.testing.certs import make_server_store

        self.certdir = Path(tempfile.mkdtemp(prefix="compat-certs-"))
        ca, store = make_server_store(self.certdir)
        p = "listener.name.sasl_ssl."
        security = {
            p + "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            **{f"{p}{m.lower()}.sasl.jaas.config": SCRAM_JAAS for m in SASL_MECHANISMS},
            p + "ssl.keystore.type": "PEM",
            p + "ssl.keystore.location": str(store),
        }
        cls = KBroker if kind == "kbroker-sasl" else KafkaNode
        try:
            self.inner = cls({**settings, **security}, extra_listeners={"SASL_SSL": "SASL_SSL"})
        except BaseException:
            shutil.rmtree(self.certdir, ignore_errors=True)
            raise
        try:
            add_scram_user(self.inner.bootstrap, SASL_USER, SASL_PASSWORD, SASL_MECHANISMS)
        except BaseException:
            self.stop()
            raise
        self.bootstrap = f"127.0.0.1:{self.inner.listener_ports['SASL_SSL']}"
        self.workdir = self.inner.workdir
        self.start_seconds = self.inner.start_seconds
        self.client_env = {
            "COMPAT_SECURITY_PROTOCOL": "SASL_SSL",
            "COMPAT_SASL_MECHANISM": SASL_MECHANISMS[0],
            "COMPAT_SASL_USERNAME": SASL_USER,
            "COMPAT_SASL_PASSWORD": SASL_PASSWORD,
            "COMPAT_SSL_CA": str(ca),
        }

    def stop(self, keep_dir: bool = False) -> None:
        self.inner.stop(keep_dir=keep_dir)
        shutil.rmtree(self.certdir, ignore_errors=True)


def start_broker(kind: str):
    settings = settings_for(kind)
    if kind.endswith("-sasl"):
        return SaslBroker(kind, settings)
    return {"kbroker": KBroker, "kafka": KafkaNode, "kbroker-cluster": KBrokerCluster,
            "kafka-cluster": KafkaCluster}[kind](settings)


# --- clients ----------------------------------------------------------------------------------

def probe_client(name: str, cmd: list[str]) -> tuple[str, list[str], str]:
    """Return (version, supported scenarios, error) of a client program."""
    try:
        ver = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        lst = subprocess.run([*cmd, "--list"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "?", [], f"cannot run {name}: {e}"
    if lst.returncode != 0:
        return "?", [], f"cannot run {name}: {(lst.stderr or lst.stdout)[-300:]}"
    return ver.stdout.strip() or "?", lst.stdout.split(), ""


def run_scenario(client: str, cmd: list[str], bootstrap: str, scenario: str, timeout: float,
                 replication_factor: int = 1, client_env: dict[str, str] | None = None) -> dict:
    t0 = time.monotonic()
    env = dict(os.environ, COMPAT_REPLICATION_FACTOR=str(replication_factor), **(client_env or {}))
    # Own session, so that on a timeout the whole process group we started (e.g. kcat children
    # of the Python driver) is ended by its id.
    proc = subprocess.Popen([*cmd, bootstrap, scenario], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return {"status": "timeout", "ok": False, "error": f"timed out after {timeout:.0f}s",
                "seconds": round(time.monotonic() - t0, 3)}
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("scenario") == scenario:
                rec["status"] = "pass" if rec.get("ok") else "fail"
                return rec
    return {"status": "fail", "ok": False, "seconds": round(time.monotonic() - t0, 3),
            "error": f"no result line (exit {proc.returncode}): {stderr[-300:]}"}


def _result_line(line: str, wanted: list[str]) -> dict | None:
    """A scenario program's result line (JSON, one of the ``wanted`` scenarios), or None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and rec.get("scenario") in wanted else None


def run_batch(client: str, cmd: list[str], bootstrap: str, scenarios: list[str], timeout: float,
              replication_factor: int = 1, client_env: dict[str, str] | None = None) -> dict[str, dict]:
    """Run ``scenarios`` in one process of the client's program, in order (every scenario program
    takes several and prints one result line each), so the program starts once instead of once a
    scenario. Each scenario keeps its own ``timeout``: its result line must come within ``timeout``
    seconds of the previous one (of the start, for the first), as a scenario run alone must end within
    ``timeout`` of its start. A scenario that does not report in time is a timeout, one whose program
    ends before its line (a crash) a failure, as when run alone; the process is ended and the
    scenarios after it run in a new process. Returns the result of each scenario."""
    env = dict(os.environ, COMPAT_REPLICATION_FACTOR=str(replication_factor), **(client_env or {}))
    results: dict[str, dict] = {}
    pending = list(scenarios)
    while pending:
        t0 = time.monotonic()
        proc = subprocess.Popen([*cmd, bootstrap, *pending], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, start_new_session=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()
        err_tail: list[str] = []

        def read_out(stream=proc.stdout, out=lines) -> None:
            for line in stream:
                out.put(line)
            out.put(None)

        def read_err(stream=proc.stderr, tail=err_tail) -> None:
            for line in stream:
                tail.append(line)
                del tail[:-40]

        readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for r in readers:
            r.start()
        started = t0
        ended: str | None = None  # "timeout" or "exit" when the process stopped short of ``pending``
        while pending:
            try:
                line = lines.get(timeout=max(0.0, started + timeout - time.monotonic()))
            except queue.Empty:
                ended = "timeout"
                break
            if line is None:
                ended = "exit"
                break
            rec = _result_line(line, pending)
            if rec is None:
                continue
            rec["status"] = "pass" if rec.get("ok") else "fail"
            results[rec["scenario"]] = rec
            pending.remove(rec["scenario"])
            started = time.monotonic()
        if proc.poll() is None and ended == "timeout":
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout if ended is None else 30)
        except subprocess.TimeoutExpired:  # reported everything but does not exit: ended by its id
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for r in readers:
            r.join(10)
        if ended is None:
            break
        current = pending.pop(0)
        seconds = round(time.monotonic() - started, 3)
        if ended == "timeout":
            results[current] = {"status": "timeout", "ok": False, "error": f"timed out after {timeout:.0f}s",
                                "seconds": seconds}
        else:
            results[current] = {"status": "fail", "ok": False, "seconds": seconds,
                                "error": f"no result line (exit {proc.returncode}): {''.join(err_tail)[-300:]}"}
    return results


def run_broker_matrix(kind: str, clients: dict[str, list[str]], probes: dict, scenarios: list[str],
                      timeout: float, jobs: int, keep_dirs: bool = False, batch: bool = False) -> dict:
    out: dict = {"results": {}, "broker": {"kind": kind}}
    t0 = time.monotonic()
    try:
        broker = start_broker(kind)
    except Exception as e:  # noqa: BLE001 - a broker that does not start fails every scenario
        err = f"{kind} did not start: {type(e).__name__}: {e}"[:300]
        log(err)
        out["broker"]["error"] = err
        for c in clients:
            out["results"][c] = {s: ({"status": "not run", "ok": False, "error": err}
                                     if s in probes[c][1] else {"status": "unsupported", "ok": False})
                                 for s in scenarios}
        return out
    out["broker"]["start_seconds"] = round(getattr(broker, "start_seconds", time.monotonic() - t0), 2)
    out["broker"]["bootstrap"] = broker.bootstrap
    rf = CLUSTER_NODES if is_cluster(kind) else 1
    log(f"{kind} ready at {broker.bootstrap} in {out['broker']['start_seconds']}s")
    try:
        tasks = []
        for c, cmd in clients.items():
            out["results"][c] = {}
            for s in scenarios:
                if probes[c][2]:
                    out["results"][c][s] = {"status": "not run", "ok": False, "error": probes[c][2]}
                elif s not in probes[c][1]:
                    out["results"][c][s] = {"status": "unsupported", "ok": False}
                else:
                    tasks.append((c, cmd, s))
        client_env = getattr(broker, "client_env", None)

        def record(c: str, s: str, rec: dict) -> None:
            out["results"][c][s] = {k: rec.get(k) for k in ("status", "ok", "error", "seconds")}
            mark = "ok  " if rec["ok"] else rec["status"].upper()
            log(f"{kind:15} {c:15} {s:28} {mark} {rec.get('seconds', '')}s {rec.get('error') or ''}"[:240])

        with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
            if batch:
                # One process a client, the clients with the most scenarios (and the JVMs) first.
                per_client: dict[str, list[str]] = {}
                for c, _cmd, s in tasks:
                    per_client.setdefault(c, []).append(s)
                order = sorted(per_client, key=lambda c: (-len(per_client[c]), not c.startswith("java")))
                futs = {pool.submit(run_batch, c, clients[c], broker.bootstrap, per_client[c], timeout, rf,
                                    client_env): c for c in order}
                for f in cf.as_completed(futs):
                    c = futs[f]
                    recs = f.result()
                    for s in per_client[c]:
                        record(c, s, recs[s])
            else:
                # Interleave clients so that concurrent jobs are different programs.
                futs1 = {pool.submit(run_scenario, c, cmd, broker.bootstrap, s, timeout, rf, client_env): (c, s)
                         for c, cmd, s in tasks}
                for f in cf.as_completed(futs1):
                    c, s = futs1[f]
                    record(c, s, f.result())
    finally:
        broker.stop(keep_dir=keep_dirs)
        if keep_dirs:
            log(f"{kind}: data and logs kept in {broker.workdir}")
    out["broker"]["seconds"] = round(time.monotonic() - t0, 1)
    return out


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
        r = run_broker_matrix(kind, cmds, probes, scenarios, args.timeout, args.jobs, args.keep_dirs, args.batch)
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
