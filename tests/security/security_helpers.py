"""Helpers of the security tests: certificates made with the openssl CLI (never committed) and
the broker settings of a TLS listener."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY_PASSWORD = "key-secret"


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path  # CA certificate (PEM)
    server_cert: Path
    server_key: Path  # unencrypted PKCS#8
    server_key_encrypted: Path  # PKCS#8 encrypted with KEY_PASSWORD
    server_store: Path  # key + chain in one PEM file (ssl.keystore.location)
    client_cert: Path
    client_key: Path
    client_dn: str  # the client certificate's subject as Java's X500Principal.getName() writes it
    other_ca: Path  # a CA that signed nothing here
    other_client_cert: Path
    other_client_key: Path

    def text(self, path: Path) -> str:
        return path.read_text()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _leaf(d: Path, name: str, ca: str, subj: str, ext: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj,
             cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def make_certs(d: Path) -> Certs:
    _ca(d, "ca")
    _ca(d, "otherca")
    _leaf(d, "server", "ca", "/CN=localhost",
          "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "client", "ca", "/C=US/O=Kbroker, Inc./OU=eng/CN=Alice Client",
          "extendedKeyUsage=clientAuth\n")
    _leaf(d, "otherclient", "otherca", "/CN=intruder", "extendedKeyUsage=clientAuth\n")
    _openssl("pkcs8", "-topk8", "-in", "server.key", "-out", "server-enc.key", "-v2", "aes-256-cbc",
             "-passout", f"pass:{KEY_PASSWORD}", cwd=d)
    (d / "server-store.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text()
                                        + (d / "ca.pem").read_text())
    return Certs(d, d / "ca.pem", d / "server.pem", d / "server.key", d / "server-enc.key", d / "server-store.pem",
                 d / "client.pem", d / "client.key", "CN=Alice Client,OU=eng,O=Kbroker\\, Inc.,C=US",
                 d / "otherca.pem", d / "otherclient.pem", d / "otherclient.key")


def ssl_listener_config(certs: Certs, listener: str = "SSL", client_auth: str = "none", **extra: str) -> dict[str, str]:
    """A broker with one TLS listener (inline PEM key store, PEM trust store file)."""
    prefix = f"listener.name.{listener.lower()}."
    config = {
        "listeners": f"{listener}://127.0.0.1:0",
        prefix + "ssl.keystore.type": "PEM",
        prefix + "ssl.keystore.certificate.chain": certs.text(certs.server_cert) + certs.text(certs.ca),
        prefix + "ssl.keystore.key": certs.text(certs.server_key),
        prefix + "ssl.truststore.type": "PEM",
        prefix + "ssl.truststore.location": str(certs.ca),
        prefix + "ssl.client.auth": client_auth,
    }
    config.update(extra)
    return config
