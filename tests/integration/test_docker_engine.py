"""The Docker image built and run by a real engine (issue 22, "Docker image").

Rootful Podman from Debian (``scripts/install-docker-engine``, called by ``scripts/test``), the base
image built from Debian packages without pulling (``scripts/docker-base``: debootstrap bookworm,
``podman import`` as ``localhost/kbroker-base``), the image built from ``docker/Dockerfile`` with
``--build-arg BASE=localhost/kbroker-base``. The containers use the host's network on ephemeral
ports, configured through the image's ``KBROKER_CFG_*`` variables, and records go through them with
kbroker's own ``produce`` / ``consume`` commands running on the host.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/kbroker-base"
IMAGE = "localhost/kbroker-test:latest"
# What this machine needs (docker/README.md, "An engine on this machine"): crun 1.8 refuses a
# hybrid cgroup hierarchy whose v2 part has a controller ("cgroups in hybrid mode not supported"),
# runc does not; podman's default RLIMIT_NOFILE/NPROC (1048576) exceed the hard limits here
# ("setrlimit `RLIMIT_NOFILE`: Operation not permitted"), so the containers get lower ones.
RUNTIME = ["--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]


def podman(*args: str, timeout: float = 120, check: bool = True, stdin: str | None = None):
    result = subprocess.run(["podman", *RUNTIME, *args], capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def kbroker_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kbroker", *args], capture_output=True, text=True,
                          timeout=120, input=stdin)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image() -> str:
    assert shutil.which("podman"), "podman is installed by scripts/install-docker-engine (scripts/test runs it)"
    podman("image", "exists", BASE)  # made by scripts/docker-base
    # docker format: the OCI format has no HEALTHCHECK, which the tests use.
    podman("build", "--format", "docker", "--network", "host", *ULIMITS, "--build-arg", f"BASE={BASE}", "-f", "docker/Dockerfile",
           "-t", IMAGE, str(ROOT), timeout=900)
    yield IMAGE
    # The previous build of the tag, now untagged: without this each run with changed sources leaves
    # an image behind in the machine's store (the new one and the base stay for the next run's cache).
    podman("image", "prune", "-f", check=False, timeout=120)


@pytest.fixture
def container(image):
    names: list[str] = []

    def run(env: dict[str, str]) -> str:
        name = f"kbroker-test-{uuid.uuid4().hex[:10]}"
        names.append(name)
        args = ["run", "-d", "--name", name, "--network", "host", *ULIMITS]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        podman(*args, image)
        return name

    yield run
    for name in names:
        podman("rm", "-f", "-t", "0", name, check=False, timeout=60)


def wait_healthy(name: str) -> None:
    """The image's own HEALTHCHECK (``podman healthcheck run``) passes."""
    def logs() -> str:
        return podman("logs", name, check=False).stderr[-3000:]

    def healthy() -> bool:
        state = podman("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip()
        assert state == "true", f"container {name} stopped:\n{logs()}"
        return podman("healthcheck", "run", name, check=False).returncode == 0

    wait_until(healthy, timeout=90, message=f"container {name} healthy", details=logs)


def produce_and_consume(port: int, topic: str) -> None:
    bootstrap = f"127.0.0.1:{port}"
    created = kbroker_cli("topic", "create", topic, "-p", "2", "-b", bootstrap)
    assert created.returncode == 0, created.stderr
    lines = [f"key{i}:value {i}" for i in range(5)]
    produced = kbroker_cli("produce", topic, "-K", ":", "-b", bootstrap, stdin="\n".join(lines) + "\n")
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout.startswith(f"produced 5 records to {topic}")
    consumed = kbroker_cli("consume", topic, "-e", "-o", "start", "-f", "%k:%v\\n", "-b", bootstrap)
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.splitlines()) == lines


def test_image_runs_as_a_broker_configured_from_the_environment(container):
    port = free_port()
    name = container({
        "KBROKER_CFG_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KBROKER_CFG_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
    })
    wait_healthy(name)
    produce_and_consume(port, "docker-single")
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    listed = podman("exec", name, "ls", "/var/lib/kbroker").stdout.split()
    assert "docker-single-0" in listed and "docker-single-1" in listed
    # The broker is the container's PID 1 (exec-form ENTRYPOINT, then exec): podman stop's SIGTERM
    # reaches it and it stops cleanly, exit code 0, not 137 from the SIGKILL after the timeout.
    podman("stop", "-t", "60", name, timeout=120)
    assert podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "0"


def test_image_formats_a_kraft_node_from_its_cluster_id_then_starts_it(container):
    port, controller = free_port(), free_port()
    cluster_id = kbroker_cli("random-uuid").stdout.strip()
    name = container({
        "KBROKER_CLUSTER_ID": cluster_id,
        "KBROKER_CFG_PROCESS_ROLES": "broker,controller",
        "KBROKER_CFG_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller}",
        "KBROKER_CFG_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KBROKER_CFG_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "KBROKER_CFG_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KBROKER_CFG_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    })
    wait_healthy(name)
    meta = podman("exec", name, "cat", "/var/lib/kbroker/meta.properties").stdout
    assert f"cluster.id={cluster_id}" in meta.splitlines()
    produce_and_consume(port, "docker-kraft")
    # A restart keeps the data: the format step skips the formatted directory, the records are still there.
    podman("restart", "-t", "10", name, timeout=120)
    wait_healthy(name)
    consumed = kbroker_cli("consume", "docker-kraft", "-e", "-o", "start", "-b", f"127.0.0.1:{port}")
    assert consumed.returncode == 0, consumed.stderr
    assert len(consumed.stdout.splitlines()) == 5


def test_the_cluster_compose_configuration_forms_a_three_node_cluster_in_containers(container):
    """The three services of docker/compose.cluster.yaml, run with their own environment, on the host's
    network: compose's names and fixed ports become 127.0.0.1 and ephemeral ports, nothing else."""
    services = yaml.safe_load((ROOT / "docker" / "compose.cluster.yaml").read_text())["services"]
    nodes = sorted(int(s["environment"]["KBROKER_CFG_NODE_ID"]) for s in services.values())
    internal = {n: free_port() for n in nodes}
    controller = {n: free_port() for n in nodes}
    external = {n: free_port() for n in nodes}
    names = []
    for service in services.values():
        n = int(service["environment"]["KBROKER_CFG_NODE_ID"])
        env = {}
        for key, value in service["environment"].items():
            value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
            for m in nodes:
                value = value.replace(f"kbroker{m}:9092", f"127.0.0.1:{internal[m]}")
                value = value.replace(f"kbroker{m}:9093", f"127.0.0.1:{controller[m]}")
            value = value.replace("0.0.0.0:9092", f"127.0.0.1:{internal[n]}")
            value = value.replace("0.0.0.0:9093", f"127.0.0.1:{controller[n]}")
            value = value.replace(f"0.0.0.0:1909{n}", f"127.0.0.1:{external[n]}")
            value = value.replace(f"localhost:1909{n}", f"127.0.0.1:{external[n]}")
            assert not re.search(r"kbroker\d|:909\d|:1909\d", value), (key, value)
            env[key] = value
        assert env["KBROKER_CFG_LISTENERS"].startswith("INTERNAL://")  # the healthcheck's listener
        names.append((n, container(env)))
    for _, name in names:
        wait_healthy(name)
    bootstrap = ",".join(f"127.0.0.1:{external[n]}" for n in nodes)

    def created() -> bool:
        # The brokers register with the active controller after their listeners open: until all three
        # are unfenced, a replication factor of 3 is refused (INVALID_REPLICATION_FACTOR).
        return kbroker_cli("topic", "create", "docker-cluster", "-p", "3", "-b", bootstrap).returncode == 0

    wait_until(created, timeout=90, interval=0.5, message="topic created with replication factor 3")

    def rows_of_describe() -> list[list[str]]:
        described = kbroker_cli("topic", "describe", "docker-cluster", "-b", bootstrap)
        assert described.returncode == 0, described.stderr
        return [re.split(r"\s{2,}", line.strip()) for line in described.stdout.splitlines() if line[:1].isdigit()]

    def all_in_sync() -> bool:
        # As in Kafka, a replica on a broker still fenced at creation joins the ISR once it is
        # unfenced and caught up (the striped placer may use a fenced broker as a last resort).
        return all(sorted(json.loads(row[4])) == nodes for row in rows_of_describe())

    wait_until(all_in_sync, timeout=60, interval=0.5, message="every replica in sync")
    rows = rows_of_describe()
    lines = [f"k{i}:v{i}" for i in range(6)]
    produced = kbroker_cli("produce", "docker-cluster", "-K", ":", "-b", f"127.0.0.1:{external[1]}",
                           stdin="\n".join(lines) + "\n")
    assert produced.returncode == 0, produced.stderr
    consumed = kbroker_cli("consume", "docker-cluster", "-e", "-f", "%k:%v\\n", "-b", f"127.0.0.1:{external[3]}")
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.splitlines()) == lines
    for n, name in names:
        meta = podman("exec", name, "cat", "/var/lib/kbroker/meta.properties").stdout.splitlines()
        assert f"node.id={n}" in meta
    assert len(rows) == 3
    for row in rows:  # PARTITION LEADER EPOCH REPLICAS ISR ...: every partition on the three nodes, all in sync
        assert sorted(json.loads(row[3])) == nodes and sorted(json.loads(row[4])) == nodes, row
