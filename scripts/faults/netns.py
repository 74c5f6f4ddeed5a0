"""Network namespaces for a cluster on one machine, and partitions between them with iptables.

Each node gets its own namespace (``kbf-<tag>-n<i>``) with one veth end (``eth0``, address
``10.77.<subnet>.<10+i>/24``) whose other end sits on a bridge (``kbf-<tag>``) in the root
namespace; the bridge has ``10.77.<subnet>.1``, where the harness itself (clients and proxies) lives.
Everything needs root. ``cleanup()`` removes whatever a run left behind (namespaces, links) by the
``kbf`` prefix.

Partitions are iptables DROP rules in the namespaces: ``block(a, b)`` drops every packet ``a``
sends to ``b`` (to its address, and to the ports in the root namespace that stand for ``b``: its
proxies), so ``a`` cannot reach ``b`` (a one-way cut: TCP across it is dead both ways, as
in Jepsen's one-way partitions, but UDP/ICMP from ``b`` still arrives). ``heal()`` flushes every rule.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger("faults.netns")
PREFIX = "kbf"
INSTALL_HINT = ("iptables is missing: install the Debian package `iptables` "
                "(scripts/install-test-tools does it)")


def require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError("the cluster fault harness needs root (network namespaces, iptables, mounts); "
                              "run it as root")


def require_tools() -> None:
    require_root()
    if shutil.which("ip") is None:
        raise RuntimeError("`ip` (iproute2) is missing: install the Debian package `iproute2`")
    if shutil.which("iptables") is None:
        raise RuntimeError(INSTALL_HINT)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


# Held while a network picks its subnet and puts the address on its bridge: runs starting together (in
# one process or several) would otherwise all pick the first free subnet, and Linux lets two bridges
# have one address, so one run's proxies would reach the other run's nodes.
# A fixed path, not $TMPDIR's: the bridges and subnets are the machine's, whatever a run's TMPDIR.
SUBNET_LOCK = Path("/tmp") / f"{PREFIX}-subnets.lock"
SUBNET_LOCK_WAIT_S = 60.0


@contextlib.contextmanager
def _choosing_subnet() -> Iterator[None]:
    with open(SUBNET_LOCK, "a") as lock:
        deadline = time.monotonic() + SUBNET_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # the holder runs two short `ip` commands: a minute means it is stuck
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{SUBNET_LOCK} still held after {SUBNET_LOCK_WAIT_S:.0f} s") from None
                time.sleep(0.05)  # (polling a lock held by another process: no event to wait on)
        yield  # the lock ends with the file


def _used_subnets() -> set[int]:
    out = sh("ip", "-o", "-4", "addr", "show").stdout
    used = set()
    for word in out.split():
        if word.startswith("10.77."):
            used.add(int(word.split(".")[2]))
    return used


class Network:
    """A bridge in the root namespace and one namespace per node; ``close()`` removes them all."""

    def __init__(self, nodes: Iterable[str], subnet: int | None = None) -> None:
        require_tools()
        self.tag = secrets.token_hex(2)
        self.bridge = f"{PREFIX}-{self.tag}"
        self.nodes = list(nodes)
        self.ns: dict[str, str] = {}
        self.ip: dict[str, str] = {}
        self.ports: dict[str, set[int]] = {n: set() for n in self.nodes}  # root-namespace ports standing for a node
        self.blocked: set[tuple[str, str]] = set()
        self._created: list[tuple[str, str]] = []
        try:
            with _choosing_subnet():
                if subnet is None:
                    used = _used_subnets()
                    subnet = next(n for n in range(256) if n not in used)
                self.subnet = subnet
                self.host_ip = f"10.77.{subnet}.1"
                sh("ip", "link", "add", self.bridge, "type", "bridge")
                self._created.append(("link", self.bridge))
                sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        sh("ip", "link", "set", self.bridge, "up")
        for i, node in enumerate(self.nodes, 1):
            ns = f"{PREFIX}-{self.tag}-{node}"
            outer, inner = f"{PREFIX}{self.tag}{i}h", f"{PREFIX}{self.tag}{i}n"
            sh("ip", "netns", "add", ns)
            self._created.append(("netns", ns))
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            self._created.append(("link", outer))
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "link", "set", outer, "master", self.bridge)
            sh("ip", "link", "set", outer, "up")
            ip = f"10.77.{self.subnet}.{10 + i}"
            self.exec(ns, "ip", "link", "set", inner, "name", "eth0")
            self.exec(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            self.exec(ns, "ip", "link", "set", "eth0", "up")
            self.exec(ns, "ip", "link", "set", "lo", "up")
            self.exec(ns, "ip", "route", "add", "default", "via", self.host_ip)
            self.ns[node], self.ip[node] = ns, ip
        log.info("network %s: bridge %s %s, nodes %s", self.tag, self.bridge, self.host_ip, self.ip)

    @staticmethod
    def exec(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *args, check=check)

    def prefix(self, node: str) -> list[str]:
        """The command prefix that runs a program inside ``node``'s namespace."""
        return ["ip", "netns", "exec", self.ns[node]]

    def stands_for(self, node: str, port: int) -> None:
        """Declare a root-namespace port (a proxy) that leads to ``node``: partitions block it too."""
        self.ports[node].add(port)

    # -- partitions --------------------------------------------------------------------------------

    def block(self, src: str, dst: str) -> None:
        """Drop every packet ``src`` sends to ``dst`` (directly or through ``dst``'s proxies)."""
        if (src, dst) in self.blocked:
            return
        ns = self.ns[src]
        self.exec(ns, "iptables", "-A", "OUTPUT", "-d", self.ip[dst], "-j", "DROP")
        for port in sorted(self.ports[dst]):
            self.exec(ns, "iptables", "-A", "OUTPUT", "-d", self.host_ip, "-p", "tcp", "--dport", str(port),
                      "-j", "DROP")
        self.exec(self.ns[dst], "iptables", "-A", "INPUT", "-s", self.ip[src], "-j", "DROP")
        self.blocked.add((src, dst))

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the nodes into groups that cannot reach one another (both directions)."""
        sets = [set(g) for g in groups]
        for a in sets:
            for b in sets:
                if a is not b:
                    for x in a:
                        for y in b:
                            self.block(x, y)

    def heal(self) -> None:
        for ns in self.ns.values():
            self.exec(ns, "iptables", "-F", check=False)
        self.blocked.clear()

    def close(self) -> None:
        for kind, name in reversed(self._created):
            if kind == "netns":
                sh("ip", "netns", "del", name, check=False)
            else:
                sh("ip", "link", "del", name, check=False)
        self._created.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cleanup(tag: str = "") -> list[str]:
    """Remove every namespace and link a harness run left behind (names starting with ``kbf``, or
    only those of the run with ``tag``) and unmount its small filesystems; returns what was removed.
    Without a tag it also removes the network of a run still going: only for leftovers."""
    require_root()
    removed = []
    for line in sh("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-{tag}"):
            sh("ip", "netns", "del", name, check=False)
            removed.append(f"netns {name}")
    for line in sh("ip", "-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith((f"{PREFIX}-{tag}", f"{PREFIX}{tag}")):
            if sh("ip", "link", "del", name, check=False).returncode == 0:
                removed.append(f"link {name}")
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            target = line.split()[1]
            if line.split()[0].startswith(f"{PREFIX}-disk-{tag}"):
                if sh("umount", "-l", target, check=False).returncode == 0:
                    removed.append(f"mount {target}")
    return removed
