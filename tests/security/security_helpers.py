"""Helpers of the security tests: certificates made with the openssl CLI (never committed) and
the broker settings of a TLS listener."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kbroker.testing.certs import SERVER_EXT, make_ca, make_leaf, openssl

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


def make_certs(d: Path) -> Certs:
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_leaf(d, "server", "ca", "/CN=localhost", SERVER_EXT)
    make_leaf(d, "client", "ca", "/C=US/O=Kbroker, Inc./OU=eng/CN=Alice Client",
              "extendedKeyUsage=clientAuth\n")
    make_leaf(d, "otherclient", "otherca", "/CN=intruder", "extendedKeyUsage=clientAuth\n")
    openssl("pkcs8", "-topk8", "-in", "server.key", "-out", "server-enc.key", "-v2", "aes-256-cbc",
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
