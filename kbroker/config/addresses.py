"""Addresses in configs: listeners (``listeners``, ``advertised.listeners``,
``listener.security.protocol.map``), the KRaft quorum (``controller.quorum.voters``,
``controller.quorum.bootstrap.servers``) and ``max.connections.per.ip.overrides``, parsed with
Kafka's rules and messages."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kbroker.config.values import _INTEGER, _LIST_SEPARATOR, INT_MAX, ConfigError

# ---------------------------------------------------------------------------------------------
# The KRaft quorum (Kafka's QuorumConfig)

_HOST_PORT = re.compile(r".*?\[?([0-9a-zA-Z\-%._:]*)\]?:([0-9]+)")  # Kafka's Utils.HOST_PORT_PATTERN
_VOTERS_FORM = ". Each entry should be in the form `{id}@{host}:{port}`."


def _host_port(text: str) -> tuple[str | None, int | None]:
    m = _HOST_PORT.fullmatch(text)
    if not m:
        return None, None
    return m.group(1), int(m.group(2))


def parse_quorum_voters(entries: Iterable[str]) -> dict[int, tuple[str, int]]:
    """``controller.quorum.voters`` (``id@host:port,...``) as Kafka's
    ``QuorumConfig.parseVoterConnections``: voter id -> (host, port), with Kafka's messages."""
    key = "controller.quorum.voters"
    voters: dict[int, tuple[str, int]] = {}
    for entry in entries:
        parts = entry.split("@")
        if len(parts) != 2:
            raise ConfigError(key, entry, "", f"Invalid configuration value for {key}{_VOTERS_FORM}")
        id_text, address = parts
        if not _INTEGER.fullmatch(id_text) or not -(2**31) <= int(id_text) <= INT_MAX:
            raise ConfigError(key, entry, "", f"Failed to parse voter ID as an integer from {id_text}")
        host, port = _host_port(address)
        if host is None or not _VALID_HOST.fullmatch(host):
            raise ConfigError(key, entry, "", f"Failed to parse host name from entry {entry} for the "
                              f"configuration {key}{_VOTERS_FORM}")
        if port is None:
            raise ConfigError(key, entry, "", f"Failed to parse host port from entry {entry} for the "
                              f"configuration {key}{_VOTERS_FORM}")
        voters[int(id_text)] = (host, port)
    return voters


def parse_bootstrap_servers(entries: Iterable[str]) -> list[tuple[str, int]]:
    """``controller.quorum.bootstrap.servers`` (``host:port,...``), Kafka's messages."""
    key = "controller.quorum.bootstrap.servers"
    out = []
    for entry in entries:
        host, port = _host_port(entry)
        if host is None or not _VALID_HOST.fullmatch(host):
            raise ConfigError(key, entry, "", f"Failed to parse host name from {entry} for the configuration "
                              f'{key}. Each entry should be in the form "{{host}}:{{port}}"')
        assert port is not None
        out.append((host, port))
    return out

# ---------------------------------------------------------------------------------------------
# Listeners


@dataclass(frozen=True, slots=True)
class Endpoint:
    listener: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener}://{host}:{self.port}"


_ENDPOINT_RE = re.compile(r"^([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:/\s]*):(-?\d+)$")


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Kafka's SecurityProtocol ids (RegisterBrokerRecord, UpdateMetadata).
SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


def parse_protocol_map(raw: str) -> dict[str, str]:
    """``listener.security.protocol.map`` as Kafka reads it (Csv.parseCsvMap: the last ``:`` splits;
    names normalised to upper case); each protocol must be one of Kafka's SecurityProtocol names."""
    key = "listener.security.protocol.map"
    out: dict[str, str] = {}
    raw = raw.strip()
    if not raw:
        return out
    for item in _LIST_SEPARATOR.split(raw):
        name, sep, proto = item.rpartition(":")
        if not sep:
            raise ConfigError(key, raw, "", f"Error parsing configuration property '{key}': "
                              f"expected LISTENER_NAME:SECURITY_PROTOCOL, got '{item}'")
        proto = proto.strip()
        if proto.upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(key, raw, "", f"Invalid security protocol `{proto}` defined in {key}")
        out[name.strip().upper()] = proto.upper()
    return out


def parse_endpoints(key: str, items: Iterable[str], protocol_map: Mapping[str, str]) -> list[Endpoint]:
    items = list(items)
    endpoints: list[Endpoint] = []
    seen: set[str] = set()
    for item in items:
        m = _ENDPOINT_RE.match(item.strip())
        if not m:
            raise ConfigError(key, item, "expected LISTENER_NAME://host:port")
        name, host, port_s = m.group(1).upper(), m.group(2), m.group(3)
        port = int(port_s)
        if not 0 <= port <= 65535:
            raise ConfigError(key, item, "port must be between 0 and 65535")
        if host.startswith("["):
            host = host[1:-1]
        if name in seen:
            raise ConfigError(key, item, "", f"Error creating broker listeners from '{','.join(items)}': "
                              f"Each listener must have a different name, listeners: {','.join(items)}")
        seen.add(name)
        protocol = protocol_map.get(name)
        if protocol is None:
            raise ConfigError(key, item, "", f"Error creating broker listeners from '{','.join(items)}': "
                              f"No security protocol defined for listener {name}")
        endpoints.append(Endpoint(name, host, port, protocol))
    return endpoints


# ---------------------------------------------------------------------------------------------
# The broker's configuration


# Kafka's Utils.validHostPattern
_VALID_HOST = re.compile(r"[a-zA-Z0-9\-:.]+")


def parse_ip_overrides(raw: str) -> dict[str, int]:
    """``max.connections.per.ip.overrides``: ``host:count`` pairs separated by commas (Kafka's
    ``Csv.parseCsvMap``: the last ``:`` splits, so IPv6 addresses work)."""
    key = "max.connections.per.ip.overrides"
    out: dict[str, int] = {}
    raw = raw.strip()
    if not raw:
        return out
    for item in re.split(r"\s*,\s*", raw):
        host, sep, count = item.rpartition(":")
        host = host.strip()
        if not sep or not host:
            raise ConfigError(key, raw, f"Error parsing configuration property '{key}': expected host:count, "
                              f"got {item!r}")
        try:
            value = int(count.strip())
        except ValueError:
            raise ConfigError(key, raw, f"Error parsing configuration property '{key}': "
                              f"{count.strip()!r} is not a number") from None
        if not _VALID_HOST.fullmatch(host):
            raise ConfigError(key, raw, f"{key} contains invalid addresses : {host}")
        out[host] = value
    return out


def normal_address(address: str) -> str:
    """A peer's address in normal form (an IPv4-mapped IPv6 address as IPv4, a scope id dropped);
    what is not an IP address is returned as given. Quotas and connection limits key on it."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
