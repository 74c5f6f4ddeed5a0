"""librdkafka's suite over SASL and TLS: the broker's listeners, the users and the suite's test.conf.

One broker (kbroker or Apache Kafka, set up the same way with Kafka's keys) gets two listeners next
to PLAINTEXT (kept for set-up): ``SASL_SSL`` and ``SASL_PLAINTEXT``, each enabling PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (Kafka's unsecured-JWS validator). Users: PLAIN from the
JAAS line's ``user_<name>`` entries, SCRAM credentials made with AlterUserScramCredentials, and for
OAUTHBEARER librdkafka's own unsecured JWT. A mode names the listener and the mechanism the suite's
clients use; its test.conf carries librdkafka's ``security.protocol``, ``sasl.*`` and ``ssl.*``
settings, and for SSL the ``SSL_*`` environment trivup gives the suite (0097_ssl_verify reads its
client key and certificates in PEM, DER and PKCS#12 from those variables).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "compat"))
import run_matrix  # noqa: E402

USER, PASSWORD = "rdkafka", "rdkafka-secret"
KEY_PASSWORD = "rdkafka-key-pass"
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
LISTENERS = {"SASL_SSL": "SASL_SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT"}
JAAS = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule required "
             f'user_{USER}="{PASSWORD}";',
    "SCRAM-SHA-256": run_matrix.SCRAM_JAAS,
    "SCRAM-SHA-512": run_matrix.SCRAM_JAAS,
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
}
# mode -> (listener, sasl.mechanism)
MODES = {
    "sasl_ssl-scram-sha-256": ("SASL_SSL", "SCRAM-SHA-256"),
    "sasl_ssl-scram-sha-512": ("SASL_SSL", "SCRAM-SHA-512"),
    "sasl_ssl-plain": ("SASL_SSL", "PLAIN"),
    "sasl_plaintext-plain": ("SASL_PLAINTEXT", "PLAIN"),
    "sasl_plaintext-oauthbearer": ("SASL_PLAINTEXT", "OAUTHBEARER"),
}


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_client_files(d: Path) -> dict[str, str]:
    """The client's key and certificate (signed by the run's CA ``d/ca.pem``) in the forms
    0097_ssl_verify loads, as the ``SSL_*`` variables trivup sets; returns that environment."""
    from kbroker.testing.certs import make_leaf

    make_leaf(d, "client", "ca", "/CN=rdkafka", "extendedKeyUsage=clientAuth\n")
    openssl("pkcs8", "-topk8", "-in", "client.key", "-out", "client-enc.key", "-passout", f"pass:{KEY_PASSWORD}",
            cwd=d)
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", "client.key", "-outform", "DER", "-out", "client-key.der", cwd=d)
    openssl("x509", "-in", "client.pem", "-outform", "DER", "-out", "client.der", cwd=d)
    openssl("x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der", cwd=d)
    openssl("pkcs12", "-export", "-in", "client.pem", "-inkey", "client.key", "-certfile", "ca.pem",
            "-out", "client.p12", "-passout", f"pass:{KEY_PASSWORD}", cwd=d)
    return {"SSL_password": KEY_PASSWORD, "SSL_pkcs": str(d / "client.p12"),
            "SSL_pub_der": str(d / "client.der"), "SSL_pub_pem": str(d / "client.pem"),
            "SSL_priv_der": str(d / "client-key.der"), "SSL_priv_pem": str(d / "client-enc.key"),
            "SSL_ca_der": str(d / "ca.der"), "SSL_all_cas_pem": str(d / "ca.pem")}


def broker_settings(store: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for listener in LISTENERS:
        p = f"listener.name.{listener.lower()}."
        out[p + "sasl.enabled.mechanisms"] = ",".join(MECHANISMS)
        for mech in MECHANISMS:
            out[f"{p}{mech.lower()}.sasl.jaas.config"] = JAAS[mech]
    out["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
    out["listener.name.sasl_ssl.ssl.keystore.location"] = str(store)
    return out


class SecureBroker:
    """A kbroker or Kafka node with the SASL_SSL and SASL_PLAINTEXT listeners and the suite's user."""

    def __init__(self, kind: str, settings: dict[str, str]):
        from kbroker.testing.certs import make_server_store

        self.certdir = Path(tempfile.mkdtemp(prefix="rdk-certs-"))
        _ca, store = make_server_store(self.certdir)
        self.ssl_env = make_client_files(self.certdir)
        cls = run_matrix.KBroker if kind == "kbroker" else run_matrix.KafkaNode
        try:
            self.inner = cls({**settings, **broker_settings(store)}, extra_listeners=LISTENERS)
        except BaseException:
            shutil.rmtree(self.certdir, ignore_errors=True)
            raise
        try:
            run_matrix.add_scram_user(self.inner.bootstrap, USER, PASSWORD, ["SCRAM-SHA-256", "SCRAM-SHA-512"])
        except BaseException:
            self.stop()
            raise

    def test_conf(self, mode: str) -> str:
        """The suite's test.conf lines for ``mode``."""
        listener, mech = MODES[mode]
        lines = [f"bootstrap.servers=127.0.0.1:{self.inner.listener_ports[listener]}",
                 f"security.protocol={listener.lower()}", f"sasl.mechanism={mech}"]
        if mech == "OAUTHBEARER":
            lines += ["enable.sasl.oauthbearer.unsecure.jwt=true", f"sasl.oauthbearer.config=principal={USER}"]
        else:
            lines += [f"sasl.username={USER}", f"sasl.password={PASSWORD}"]
        if listener == "SASL_SSL":
            env = self.ssl_env
            lines += [f"ssl.ca.location={env['SSL_all_cas_pem']}", f"ssl.certificate.location={env['SSL_pub_pem']}",
                      f"ssl.key.location={env['SSL_priv_pem']}", f"ssl.key.password={env['SSL_password']}"]
        return "\n".join(lines) + "\n"

    def env(self, mode: str) -> dict[str, str]:
        return dict(self.ssl_env) if MODES[mode][0] == "SASL_SSL" else {}

    def stop(self) -> None:
        self.inner.stop()
        shutil.rmtree(self.certdir, ignore_errors=True)
