"""Secured inter-broker listeners for cluster tests: a CA and node certificate, and a cluster whose
INTERNAL (inter-broker) and CONTROLLER listeners speak SSL, SASL_PLAINTEXT or SASL_SSL."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cluster_fixture import Cluster

from kbroker.cluster import free_ports
from kbroker.config import load_properties_file

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_node_certs(d: Path) -> tuple[Path, Path]:
    """A CA and one node certificate for 127.0.0.1 good for both TLS ends (serverAuth,
    clientAuth): (CA file, key + chain file)."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj",
             "/CN=kbroker-node", cwd=d)
    (d / "node.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                "extendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "node.pem", "-days", "2", "-extfile", "node.ext", cwd=d)
    store = d / "node-store.pem"
    store.write_text((d / "node.key").read_text() + (d / "node.pem").read_text() + (d / "ca.pem").read_text())
    return d / "ca.pem", store


def _tls(listener: str, ca: Path, store: Path, client_auth: str) -> dict[str, str]:
    p = f"listener.name.{listener}."
    return {p + "ssl.keystore.type": "PEM", p + "ssl.keystore.location": str(store),
            p + "ssl.truststore.type": "PEM", p + "ssl.truststore.location": str(ca),
            p + "ssl.client.auth": client_auth}


def _plain(listener: str, password: str, client_password: str | None = None) -> dict[str, str]:
    p = f"listener.name.{listener}."
    return {p + "sasl.enabled.mechanisms": "PLAIN",
            p + "plain.sasl.jaas.config": f'{PLAIN} required username="node" '
                                          f'password="{client_password or password}" user_node="{password}";'}


def secure(cluster: Cluster, certs: tuple[Path, Path], protocol: str) -> None:
    """Give every node an INTERNAL listener (the inter-broker one) and make it and CONTROLLER speak
    ``protocol``; clients keep the PLAINTEXT listener."""
    ca, store = certs
    ports = free_ports(len(cluster.node_ids))
    for node_id, port in zip(cluster.node_ids, ports, strict=True):
        path = cluster.layout.properties_path(node_id)
        props = load_properties_file(path)
        broker = node_id in cluster.layout.brokers  # a controller-only node has the controller listener only
        if broker:
            props["listeners"] += f",INTERNAL://127.0.0.1:{port}"
            props["inter.broker.listener.name"] = "INTERNAL"
        props["listener.security.protocol.map"] = f"PLAINTEXT:PLAINTEXT,INTERNAL:{protocol},CONTROLLER:{protocol}"
        for listener in ("internal", "controller"):
            props.update(_tls(listener, ca, store, "required" if protocol == "SSL" else "none"))
            if protocol.startswith("SASL"):
                props.update(_plain(listener, f"{listener}-secret"))
        if protocol.startswith("SASL"):
            props["sasl.mechanism.inter.broker.protocol"] = "PLAIN"
            props["sasl.mechanism.controller.protocol"] = "PLAIN"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
