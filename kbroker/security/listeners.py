"""Each listener's security settings, built and checked once at start-up.

A listener's security protocol comes from ``listener.security.protocol.map`` (kbroker.config); its
settings from the ``ssl.*``/``sasl.*`` keys, ``listener.name.<listener>.<key>`` first. Anything
Kafka would refuse (or kbroker cannot do: GSSAPI, OAUTHBEARER, JKS/PKCS12 stores) stops start-up
with a :class:`~kbroker.config.ConfigError` naming the key.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from kbroker.config import BrokerConfig, ConfigError
from kbroker.security.jaas import JaasError, plain_users, server_entry
from kbroker.security.tls import PrincipalMapper, build_server_context

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(slots=True)
class ListenerSecurity:
    listener: str
    protocol: str
    ssl_context: ssl.SSLContext | None = None
    principal_mapper: PrincipalMapper | None = None
    sasl_mechanisms: list[str] = field(default_factory=list)
    plain_users: dict[str, str] = field(default_factory=dict)
    max_receive_size: int = 524288
    reauth_ms: int = 0
    failed_auth_delay_ms: int = 100

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _key(config: BrokerConfig, listener: str, key: str) -> str:
    return f"listener.name.{listener.lower()}.{key}" if (listener, key) in config.listener_overrides else key


def build_listener_security(config: BrokerConfig) -> dict[str, ListenerSecurity]:
    """Settings of every client listener; raises :class:`ConfigError`."""
    out: dict[str, ListenerSecurity] = {}
    for endpoint in config.client_listeners:
        name, protocol = endpoint.listener, endpoint.security_protocol
        sec = ListenerSecurity(name, protocol,
                               failed_auth_delay_ms=config["connection.failed.authentication.delay.ms"])
        if protocol in ("SSL", "SASL_SSL"):
            sec.ssl_context = build_server_context(config, name)
        if protocol == "SSL":
            rules_key = _key(config, name, "ssl.principal.mapping.rules")
            sec.principal_mapper = PrincipalMapper(config.listener_value(name, "ssl.principal.mapping.rules"),
                                                   rules_key)
        if sec.sasl:
            _sasl_settings(config, sec)
        out[name] = sec
    return out


def _sasl_settings(config: BrokerConfig, sec: ListenerSecurity) -> None:
    name = sec.listener
    key = _key(config, name, "sasl.enabled.mechanisms")
    mechanisms = [m.strip() for m in config.listener_value(name, "sasl.enabled.mechanisms")]
    if not mechanisms:
        raise ConfigError(key, "", "", f"No SASL mechanisms are enabled for listener {name} ({key} is empty)")
    for mechanism in mechanisms:
        if mechanism not in SUPPORTED_MECHANISMS:
            raise ConfigError(key, ",".join(mechanisms), "", (
                f"SASL mechanism {mechanism} in {key} is not supported by kbroker (listener {name}); "
                f"supported: {', '.join(SUPPORTED_MECHANISMS)}"
                + (" (GSSAPI is Kafka's default: set sasl.enabled.mechanisms)" if mechanism == "GSSAPI" else "")))
    sec.sasl_mechanisms = mechanisms
    size_key = _key(config, name, "sasl.server.max.receive.size")
    sec.max_receive_size = config.listener_value(name, "sasl.server.max.receive.size")
    if sec.max_receive_size < 0:
        raise ConfigError(size_key, sec.max_receive_size, "Value must be at least 0")
    sec.reauth_ms = config.listener_value(name, "connections.max.reauth.ms")
    if "PLAIN" in mechanisms:
        jaas = config.listener_jaas(name, "PLAIN")
        jaas_key = f"listener.name.{name.lower()}.plain.sasl.jaas.config"
        if jaas is None:
            raise ConfigError(jaas_key, None, "", (
                f"Listener {name} enables PLAIN but has no JAAS configuration: set {jaas_key} to "
                'org.apache.kafka.common.security.plain.PlainLoginModule required user_<name>="<password>";'))
        try:
            entry = server_entry(jaas)
        except JaasError as exc:
            raise ConfigError(jaas_key, "[hidden]", str(exc), f"Invalid {jaas_key}: {exc}") from None
        sec.plain_users = plain_users(entry)
        if not entry.login_module.endswith("PlainLoginModule"):
            raise ConfigError(jaas_key, "[hidden]", "", (
                f"{jaas_key} names login module {entry.login_module}; PLAIN needs "
                "org.apache.kafka.common.security.plain.PlainLoginModule"))
