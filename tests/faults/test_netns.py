"""Network namespaces and iptables partitions: a partition really blocks traffic between two
namespaces (directly and through a proxy standing for a node) and heals; a one-way block is one-way;
everything is removed at the end."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from faults import netns
from faults.proxy import ProxyHub
from rootcheck import needs_root  # noqa: F401 - autouse fixture

SERVER = """
import socket, sys
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 7000)); tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 7001))
import threading
def udp_loop():
    while True:
        data, _ = udp.recvfrom(100)
        print(data.decode(), flush=True)
threading.Thread(target=udp_loop, daemon=True).start()
print("ready", flush=True)
while True:
    conn, _ = tcp.accept(); conn.sendall(b"hi"); conn.close()
"""

CONNECT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    s.settimeout(float(sys.argv[3]))
    sys.exit(0 if s.recv(2) == b"hi" else 1)
except OSError:
    sys.exit(1)
"""

UDP = """
import socket, sys
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
except PermissionError:  # dropped by an OUTPUT rule of this namespace
    sys.exit(3)
"""


def run_in(net: netns.Network, node: str, code: str, *args: str) -> int:
    return subprocess.run([*net.prefix(node), sys.executable, "-c", code, *args], timeout=30).returncode


def reaches(net: netns.Network, src: str, host: str, port: int, timeout: float) -> bool:
    return run_in(net, src, CONNECT, host, str(port), str(timeout)) == 0


def dropped(net: netns.Network, node: str) -> int:
    """Packets the DROP rules of ``node``'s namespace counted."""
    out = net.exec(net.ns[node], "iptables", "-L", "-v", "-n", "-x").stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if "DROP" in line.split()[2:3])


@pytest.fixture
def net():
    network = netns.Network(["a", "b"])
    servers = {}
    try:
        for node in ("a", "b"):
            proc = subprocess.Popen([*network.prefix(node), sys.executable, "-u", "-c", SERVER],
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "ready"
            servers[node] = proc
        network.servers = servers
        yield network
    finally:
        for proc in servers.values():
            proc.kill()
            proc.wait()
        network.close()


def test_partition_blocks_both_ways_and_heals(net):
    assert reaches(net, "a", net.ip["b"], 7000, 10) and reaches(net, "b", net.ip["a"], 7000, 10)
    net.partition(["a"], ["b"])
    assert not reaches(net, "a", net.ip["b"], 7000, 1)
    assert not reaches(net, "b", net.ip["a"], 7000, 1)
    assert dropped(net, "a") > 0 and dropped(net, "b") > 0
    net.heal()
    assert dropped(net, "a") == 0
    assert reaches(net, "a", net.ip["b"], 7000, 10) and reaches(net, "b", net.ip["a"], 7000, 10)


def test_one_way_block_drops_only_what_the_source_sends(net):
    net.block("a", "b")
    assert run_in(net, "a", UDP, net.ip["b"], "7001", "from-a") == 3  # dropped on the way out of a
    assert run_in(net, "b", UDP, net.ip["a"], "7001", "from-b") == 0
    # b's datagram reaches a (a's server prints it); a's never left a (its DROP rule counted it).
    assert net.servers["a"].stdout.readline().strip() == "from-b"
    assert dropped(net, "a") >= 1
    assert not reaches(net, "a", net.ip["b"], 7000, 1)
    net.heal()
    run_in(net, "a", UDP, net.ip["b"], "7001", "again-from-a")
    assert net.servers["b"].stdout.readline().strip() == "again-from-a"


def test_partition_covers_the_proxy_standing_for_a_node(net):
    hub = ProxyHub()
    try:
        proxy = hub.add("b", net.host_ip, (net.ip["b"], 7000), {net.ip["a"]: "a"})
        net.stands_for("b", proxy.port)
        assert reaches(net, "a", net.host_ip, proxy.port, 10)
        net.partition(["a"], ["b"])
        assert not reaches(net, "a", net.host_ip, proxy.port, 1)
        net.heal()
        assert reaches(net, "a", net.host_ip, proxy.port, 10)
    finally:
        hub.close()


def test_close_and_cleanup_remove_everything():
    network = netns.Network(["x"])
    name, bridge = network.ns["x"], network.bridge
    network.close()
    assert name not in netns.sh("ip", "netns", "list").stdout
    assert netns.sh("ip", "link", "show", bridge, check=False).returncode != 0
    leftover = netns.Network(["y"])  # as if a run had been killed: nothing closes it
    removed = netns.cleanup(leftover.tag)  # only its own: other runs may be going
    assert f"netns {leftover.ns['y']}" in removed
    assert leftover.ns["y"] not in netns.sh("ip", "netns", "list").stdout
    assert netns.sh("ip", "link", "show", leftover.bridge, check=False).returncode != 0


def test_missing_iptables_is_named(monkeypatch):
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "iptables" else "/usr/sbin/" + tool)
    with pytest.raises(RuntimeError, match="Debian package `iptables`"):
        netns.Network(["z"])


def test_networks_made_at_the_same_time_get_their_own_subnets():
    """Runs started together (two harness runs on one machine) each get a subnet of their own: two
    bridges with one address would send one run's proxies to the other run's nodes."""
    count = 4
    barrier = threading.Barrier(count)
    made: list[netns.Network] = []
    errors: list[BaseException] = []

    def make() -> None:
        barrier.wait()
        try:
            made.append(netns.Network(["s"]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert len({network.subnet for network in made}) == count, [network.host_ip for network in made]
    finally:
        for network in made:
            network.close()
