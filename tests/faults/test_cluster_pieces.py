"""The cluster's process and disk faults and the schedule, on a stand-in target (a sleeping process
per node), so that they run in seconds: nodes run in their own namespaces, kill -9 / SIGSTOP /
SIGCONT / restart act on them, the small disk fills and frees, and everything is removed at the end."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from faults import netns
from faults.cluster import Cluster, Target
from faults.schedule import KINDS, generate
from rootcheck import needs_root  # noqa: F401 - autouse fixture
from waiting import wait_until


class Sleeper(Target):
    name = "sleeper"

    def format_command(self, conf: Path, cluster_id: str) -> list[str]:
        return [sys.executable, "-c", f"open({str(conf.parent / 'formatted')!r}, 'w').write({cluster_id!r})"]

    def start_command(self, conf: Path) -> list[str]:
        return [sys.executable, "-c", "import time\nwhile True: time.sleep(60)"]


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(Sleeper(), tmp_path / "nodes", seed=5, small_disk_node="n3", small_disk_mb=4)
    try:
        c.setup()
        yield c
    finally:
        c.close()


def test_nodes_run_in_their_namespaces_and_take_process_faults(cluster):
    conf = (cluster.nodes["n1"].conf).read_text()
    assert "process.roles=broker,controller" in conf and "min.insync.replicas=2" in conf
    assert f"controller.quorum.voters=1@{cluster.net.host_ip}:" in conf
    assert (cluster.nodes["n1"].workdir / "formatted").read_text() == cluster.cluster_id
    cluster.start_all()
    pid, pid2 = cluster.nodes["n1"].proc.pid, cluster.nodes["n2"].proc.pid
    # `ip netns exec` enters the namespace after it is started: wait for it to have done so.
    host = os.readlink("/proc/self/ns/net")
    wait_until(lambda: host not in (os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid2}/ns/net")), 10,
               message="n1 and n2 in their namespaces")
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink(f"/proc/{pid2}/ns/net")
    cluster.pause("n1")
    wait_until(lambda: state(pid) == "T", 10, message="n1 stopped")
    cluster.resume("n1")
    wait_until(lambda: state(pid) in "RS", 10, message="n1 running again")
    cluster.kill("n1")
    assert cluster.nodes["n1"].proc.returncode == -9 and not cluster.nodes["n1"].alive
    assert cluster.nodes["n1"].expected_down
    cluster.start("n1")
    assert cluster.nodes["n1"].alive and cluster.nodes["n1"].starts == 2


def test_small_disk_fills_and_frees(cluster):
    disk = cluster.nodes["n3"].disk
    written = cluster.fill_disk("n3")
    assert 0 < written <= 4 << 20
    with pytest.raises(OSError), open(disk / "more", "wb") as f:
        f.write(b"x" * 65536)
        f.flush()
    cluster.free_disk("n3")
    (disk / "more").write_bytes(b"x" * 65536)
    cluster.close()
    with open("/proc/mounts") as mounts:
        assert str(disk) not in mounts.read()
    assert cluster.net.ns["n1"] not in netns.sh("ip", "netns", "list").stdout


def test_schedule_is_seeded_and_mixes_faults():
    nodes = ["n1", "n2", "n3"]
    one = generate(42, 30, nodes, disk_node="n3")
    assert one == generate(42, 30, nodes, disk_node="n3")
    assert one != generate(43, 30, nodes, disk_node="n3")
    assert len({f.kind for f in one}) >= 6 and all(f.kind in KINDS for f in one)
    assert all(2.0 <= f.duration <= 8.0 and 2.0 <= f.heal <= 5.0 for f in one)
    assert all(f.nodes[0] != f.nodes[1] for f in one if f.kind in ("one-way", "bridge"))
    assert all(0 < f.delay for f in one if f.kind == "delay") and all(0 < f.loss for f in one if f.kind == "loss")
    assert "disk-full" not in {f.kind for f in generate(42, 60, nodes)}  # no small disk: never drawn
