"""Certificates for tests and test tools, made with the openssl command line (never committed keys):
a CA, a server certificate for localhost/127.0.0.1, client certificates."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> Path:
    """A self-signed CA ``<name>.pem`` with its key ``<name>.key`` in ``d``."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / f"{name}.pem"


def make_leaf(d: Path, name: str, ca: str, subj: str, ext: str) -> Path:
    """A certificate ``<name>.pem`` (key ``<name>.key``, PKCS#8) signed by the CA ``<ca>.pem``."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj,
            cwd=d)
    (d / f"{name}.ext").write_text(ext)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d / f"{name}.pem"


SERVER_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"


def make_server_store(d: Path) -> tuple[Path, Path]:
    """(CA certificate, key store) for a loopback TLS listener: the store is one PEM file with the
    server's key and certificate chain, as ``ssl.keystore.type=PEM`` + ``ssl.keystore.location``
    take it on both kbroker and Kafka."""
    d.mkdir(parents=True, exist_ok=True)
    ca = make_ca(d, "ca")
    make_leaf(d, "server", "ca", "/CN=localhost", SERVER_EXT)
    store = d / "server-store.pem"
    store.write_text((d / "server.key").read_text() + (d / "server.pem").read_text() + ca.read_text())
    return ca, store
