"""Each listener's security settings, built and checked once at start-up.

A listener's security protocol comes from ``listener.security.protocol.map`` (kbroker.config); its
settings from the ``ssl.*``/``sasl.*`` keys, ``listener.name.<listener>.<key>`` first. Anything
Kafka would refuse (or kbroker cannot do: GSSAPI, JKS/PKCS12 stores) stops start-up
with a :class:`~kbroker.config.ConfigError` naming the key.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from kbroker.config import BrokerConfig, ConfigError
from kbroker.security.jaas import JaasError, plain_users, server_entry
from kbroker.security.tls import PrincipalMapper, build_server_context

if TYPE_CHECKING:
    from kbroker.security.oauthbearer import Validator

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


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
    # listener.name.<l>.<mechanism, lower case>.connections.max.reauth.ms (Kafka's per-mechanism value)
    reauth_ms_by_mechanism: dict[str, int] = field(default_factory=dict)
    failed_auth_delay_ms: int = 100
    oauth_validator: Any = None  # kbroker.security.oauthbearer: UnsecuredValidator or JwksValidator

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
    for mechanism in mechanisms:
        value = config.listener_overrides.get((name.upper(), f"{mechanism.lower()}.connections.max.reauth.ms"))
        if value is not None:
            sec.reauth_ms_by_mechanism[mechanism] = value
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
    if "OAUTHBEARER" in mechanisms:
        sec.oauth_validator = _oauth_validator(config, name)


def _mechanism_key(config: BrokerConfig, listener: str, mechanism: str, key: str) -> tuple[str, object]:
    """A SASL key for one mechanism of a listener, as Kafka's SaslChannelBuilder reads it:
    ``listener.name.<l>.<mechanism>.<key>``, else ``listener.name.<l>.<key>``, else ``<key>``;
    returns (the key as given, value)."""
    found = config.listener_overrides.get((listener.upper(), f"{mechanism}.{key}"))
    if found is not None:
        return f"listener.name.{listener.lower()}.{mechanism}.{key}", found
    return _key(config, listener, key), config.listener_value(listener, key)


def _oauth_validator(config: BrokerConfig, name: str) -> Validator:
    from kbroker.security import oauthbearer as ob

    def get(key: str) -> Any:
        return _mechanism_key(config, name, "oauthbearer", key)[1]

    handler_key, handler = _mechanism_key(config, name, "oauthbearer", "sasl.server.callback.handler.class")
    jaas = config.listener_jaas(name, "OAUTHBEARER")
    jaas_key = f"listener.name.{name.lower()}.oauthbearer.sasl.jaas.config"
    if handler in (None, "", ob.UNSECURED_HANDLER):
        # Kafka's default: the unsecured validator, configured by the JAAS line's options
        if jaas is None:
            raise ConfigError(jaas_key, None, "", (
                f"Listener {name} enables OAUTHBEARER but has no JAAS configuration: set {jaas_key} to "
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"))
        try:
            entry = server_entry(jaas)
            return ob.UnsecuredValidator(entry.options)
        except (JaasError, ValueError) as exc:
            raise ConfigError(jaas_key, "[hidden]", str(exc), f"Invalid {jaas_key}: {exc}") from None
    if handler not in (ob.VALIDATOR_HANDLER, ob.VALIDATOR_HANDLER_OLD):
        raise ConfigError(handler_key, handler, "", (
            f"{handler_key} names {handler}; kbroker has Kafka's {ob.UNSECURED_HANDLER} (the default) and "
            f"{ob.VALIDATOR_HANDLER}"))
    url_key, url = _mechanism_key(config, name, "oauthbearer", "sasl.oauthbearer.jwks.endpoint.url")
    if not url:
        raise ConfigError(url_key, url, "", f"{ob.VALIDATOR_HANDLER} on listener {name} needs {url_key}")
    if url not in config["kbroker.sasl.oauthbearer.allowed.urls"]:
        raise ConfigError(url_key, url, "", (
            f"Invalid value {url} for configuration {url_key}: The URL cannot be accessed due to restrictions. "
            "Update kbroker.sasl.oauthbearer.allowed.urls (Kafka's system property "
            "'org.apache.kafka.sasl.oauthbearer.allowed.urls') to allow the URL to be accessed."))
    audience_key, audiences = _mechanism_key(config, name, "oauthbearer", "sasl.oauthbearer.expected.audience")
    issuer_key, issuer = _mechanism_key(config, name, "oauthbearer", "sasl.oauthbearer.expected.issuer")
    if not audiences and not get("sasl.oauthbearer.allow.unverified.audience"):
        raise ConfigError(audience_key, "", "", (
            'The OAuth validator for the broker requires "sasl.oauthbearer.expected.audience" to be configured so '
            'that the token\'s audience ("aud") claim can be verified, but it was not set. Set '
            '"sasl.oauthbearer.expected.audience" to the audience(s) that identify this cluster, or set '
            '"sasl.oauthbearer.allow.unverified.audience" to true to accept tokens regardless of their audience.'))
    if issuer is None and not get("sasl.oauthbearer.allow.unverified.issuer"):
        raise ConfigError(issuer_key, None, "", (
            'The OAuth validator for the broker requires "sasl.oauthbearer.expected.issuer" to be configured so '
            'that the token\'s issuer ("iss") claim can be verified, but it was not set. Set '
            '"sasl.oauthbearer.expected.issuer" to the issuer URL of the OAuth/OIDC provider that signs the tokens, '
            'or set "sasl.oauthbearer.allow.unverified.issuer" to true to accept tokens regardless of their issuer.'))
    try:
        import jwt  # noqa: F401
    except ImportError:
        raise ConfigError(handler_key, handler, "", (
            f"{ob.VALIDATOR_HANDLER} needs PyJWT with cryptography: pip install 'kbroker[oauth]'")) from None
    # (the configuration's types for these keys: string, list, string or null)
    return ob.JwksValidator(cast(str, url), list(cast(list[str], audiences)), cast(str | None, issuer),
                            sub_claim=get("sasl.oauthbearer.sub.claim.name"),
                            scope_claim=get("sasl.oauthbearer.scope.claim.name"),
                            clock_skew_s=get("sasl.oauthbearer.clock.skew.seconds"),
                            refresh_ms=get("sasl.oauthbearer.jwks.endpoint.refresh.ms"),
                            retry_backoff_ms=get("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms"))
