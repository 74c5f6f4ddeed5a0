"""The brokers of compat/run_matrix.py: kbroker as a subprocess, one node or a three-node cluster,
Apache Kafka's reference broker (one node or a cluster), and either one with clients over SASL_SSL
with SCRAM."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from matrix_config import (
    CLUSTER_NODES,
    PY,
    ROOT,
    SASL_MECHANISMS,
    SASL_PASSWORD,
    SASL_USER,
    SCRAM_JAAS,
    reference_kafka,
    settings_for,
)

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

    def log_files(self) -> list[Path]:
        return [self.log_file]

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

    def log_files(self) -> list[Path]:
        return [self.layout.log_path(i) for i in self.procs]

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

    def log_files(self) -> list[Path]:
        """Each node's server.log, copied as node-ID.log."""
        return [self.workdir / f"node-{i}" / "server.log" for i in sorted(self.cluster.ports)]

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

    def log_files(self) -> list[Path]:
        return [self.handle.log_file]

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

    def log_files(self) -> list[Path]:
        return list(self.inner.log_files())

    def stop(self, keep_dir: bool = False) -> None:
        self.inner.stop(keep_dir=keep_dir)
        shutil.rmtree(self.certdir, ignore_errors=True)


def start_broker(kind: str):
    settings = settings_for(kind)
    if kind.endswith("-sasl"):
        return SaslBroker(kind, settings)
    return {"kbroker": KBroker, "kafka": KafkaNode, "kbroker-cluster": KBrokerCluster,
            "kafka-cluster": KafkaCluster}[kind](settings)
