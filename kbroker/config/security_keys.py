"""Broker keys of security and listeners (Kafka's BrokerSecurityConfigs, SslConfigs, SaslConfigs,
DelegationTokenManagerConfigs, the authorizer's): TLS stores, client authentication, SASL,
delegation tokens, ACLs; which of them a listener (and a SASL mechanism) may override, and how
``listener.name.<listener>.<key>`` settings are read. Part of ``BROKER_KEYS`` (:mod:`kbroker.config.keys`).
"""

from __future__ import annotations

import re

from kbroker.config.values import ConfigKey, _k

# Security keys (kbroker/security): TLS stores, client authentication, SASL. Every one may also be
# given per listener as ``listener.name.<listener>.<key>`` (BrokerConfig.listener_value).
SECURITY_KEYS: list[ConfigKey] = [
    _k("ssl.keystore.type", "string", "JKS",
       doc="The format of the key store of SSL and SASL_SSL listeners. kbroker reads PEM only and refuses JKS "
           "(Kafka's default) and PKCS12 at start-up: set PEM."),
    _k("ssl.keystore.location", "string", None,
       doc="The file holding the listener's private key and certificate chain (PEM), used when they are not given "
           "inline in ssl.keystore.key and ssl.keystore.certificate.chain."),
    _k("ssl.keystore.password", "password", None, sensitive=True,
       doc="The password of a JKS or PKCS12 key store file. kbroker reads PEM stores, with which Kafka refuses "
           "this key (use ssl.key.password for an encrypted key)."),
    _k("ssl.key.password", "password", None, sensitive=True,
       doc="The password of the encrypted private key in the key store; unset for an unencrypted key."),
    _k("ssl.keystore.key", "password", None, sensitive=True,
       doc="The listener's private key inline, in PEM, as an alternative to ssl.keystore.location."),
    _k("ssl.keystore.certificate.chain", "password", None, sensitive=True,
       doc="The listener's certificate chain inline, in PEM, given with ssl.keystore.key."),
    _k("ssl.truststore.type", "string", "JKS",
       doc="The format of the trust store holding the certificates peers are checked against. kbroker reads PEM "
           "only and refuses JKS (Kafka's default) and PKCS12: set PEM."),
    _k("ssl.truststore.location", "string", None,
       doc="The file of trusted CA certificates (PEM) used to check the certificates of clients and of other "
           "brokers."),
    _k("ssl.truststore.password", "password", None, sensitive=True,
       doc="The password of a JKS or PKCS12 trust store file. kbroker reads PEM stores, with which Kafka refuses "
           "this key."),
    _k("ssl.truststore.certificates", "password", None, sensitive=True,
       doc="Trusted CA certificates inline, in PEM, as an alternative to ssl.truststore.location."),
    _k("ssl.client.auth", "string", "none", choices=("required", "requested", "none"),
       doc="Whether SSL listeners ask clients for a certificate: required (the handshake fails without one), "
           "requested (checked if sent), or none."),
    _k("ssl.principal.mapping.rules", "string", "DEFAULT",
       doc="Rules that turn a client certificate's subject name into the principal ACLs are checked against, "
           "first match wins; DEFAULT keeps the whole subject."),
    _k("ssl.enabled.protocols", "list", "TLSv1.2,TLSv1.3",
       doc="The TLS versions a listener accepts (and the inter-broker client offers): TLSv1.2 and/or TLSv1.3."),
    _k("ssl.protocol", "string", "TLSv1.3",
       doc="The protocol Kafka asks Java's SSLContext for. Accepted but not read: kbroker negotiates the versions "
           "listed in ssl.enabled.protocols."),
    _k("ssl.cipher.suites", "list", "",
       doc="The cipher suites TLS 1.2 may use, by IANA or OpenSSL names; empty means the TLS library's defaults. "
           "Listing only TLS 1.3 suites limits a listener to TLS 1.3."),
    _k("ssl.endpoint.identification.algorithm", "string", "https",
       doc="https makes a TLS client (here, a broker connecting to another node) check that the server's "
           "certificate matches its host name; empty turns the check off."),
    _k("ssl.keymanager.algorithm", "string", "SunX509", applied=False,
       doc="The Java key manager algorithm of Kafka's SSL engine. Accepted for compatibility, no effect: kbroker "
           "uses Python's ssl module."),
    _k("ssl.trustmanager.algorithm", "string", "PKIX", applied=False,
       doc="The Java trust manager algorithm of Kafka's SSL engine. Accepted for compatibility, no effect: "
           "kbroker uses Python's ssl module."),
    _k("ssl.secure.random.implementation", "string", None, applied=False,
       doc="The Java SecureRandom implementation of Kafka's SSL engine. Accepted for compatibility, no effect: "
           "kbroker uses Python's ssl module."),
    _k("sasl.enabled.mechanisms", "list", "GSSAPI",
       doc="The SASL mechanisms SASL listeners offer. kbroker has PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and "
           "OAUTHBEARER; GSSAPI (Kafka's default) is refused at start-up, so set this on a SASL listener."),
    _k("sasl.jaas.config", "password", None, sensitive=True,
       doc="The JAAS login configuration of a SASL mechanism, usually given per listener and mechanism "
           "(listener.name.<listener>.<mechanism>.sasl.jaas.config): the PLAIN users, and the credentials the "
           "broker logs in to other nodes with."),
    # the inter-node clients' security (kbroker/security/client.py, issue 17)
    _k("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI",
       doc="The SASL mechanism brokers use to log in to each other on a SASL inter-broker listener."),
    _k("sasl.mechanism.controller.protocol", "string", "GSSAPI",
       doc="The SASL mechanism nodes use to log in to the controllers on a SASL controller listener."),
    _k("security.inter.broker.protocol", "string", "PLAINTEXT",
       choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
       doc="The security protocol of the inter-broker listener, naming it by protocol instead of "
           "inter.broker.listener.name; only one of the two may be set."),
    _k("sasl.server.max.receive.size", "int", "524288",
       doc="The largest SASL authentication message, in bytes, the broker accepts before a client has "
           "authenticated."),
    _k("connections.max.reauth.ms", "long", "0",
       doc="The longest a SASL session lasts before the client must re-authenticate (KIP-368), in ms; 0 means "
           "never. Can be set per listener and mechanism."),
    _k("connection.failed.authentication.delay.ms", "int", "100", minimum=0,
       doc="How long, in ms, the answer to a failed authentication is held back before the connection is closed, "
           "to slow down password guessing."),
    _k("authorizer.class.name", "string", "",
       doc="The authorizer checking requests against ACLs; empty means none (everything is allowed). kbroker "
           "accepts Kafka's StandardAuthorizer, org.apache.kafka.metadata.authorizer.StandardAuthorizer, and "
           "refuses other classes."),
    _k("super.users", "string", None,
       doc="Principals allowed everything whatever the ACLs, separated by semicolons (User:admin;User:ops)."),
    _k("allow.everyone.if.no.acl.found", "boolean", "false",
       doc="Whether a request on a resource that no ACL matches is allowed (true) or denied (false, the default)."),
    # OAUTHBEARER (Kafka's SaslConfigs): the validator a listener's
    # listener.name.<l>.oauthbearer.sasl.server.callback.handler.class names, and its settings.
    _k("sasl.server.callback.handler.class", "class", None,
       doc="The class that checks SASL credentials, set per listener and mechanism. For OAUTHBEARER kbroker has "
           "Kafka's unsecured validator (the default) and the JWKS-based OAuthBearerValidatorCallbackHandler; "
           "other classes are refused."),
    _k("sasl.oauthbearer.jwks.endpoint.url", "string", None,
       doc="The URL of the identity provider's JSON Web Key Set, whose keys check the signatures of OAUTHBEARER "
           "tokens. It must also be listed in kbroker.sasl.oauthbearer.allowed.urls."),
    _k("sasl.oauthbearer.jwks.endpoint.refresh.ms", "long", "3600000",
       doc="How often, in ms, the JSON Web Key Set is fetched again."),
    _k("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", "long", "100",
       doc="The least time, in ms, between two attempts to fetch the JSON Web Key Set after a failure."),
    _k("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", "long", "10000",
       doc="The cap on Kafka's growing back-off between attempts to fetch the JSON Web Key Set. Accepted but not "
           "read: kbroker retries after sasl.oauthbearer.jwks.endpoint.retry.backoff.ms."),
    _k("sasl.oauthbearer.expected.audience", "list", "",
       doc="The audiences an OAUTHBEARER token's aud claim must include one of; required by the JWKS validator "
           "unless sasl.oauthbearer.allow.unverified.audience is true."),
    _k("sasl.oauthbearer.expected.issuer", "string", None,
       doc="The value an OAUTHBEARER token's iss claim must have; required by the JWKS validator unless "
           "sasl.oauthbearer.allow.unverified.issuer is true."),
    _k("sasl.oauthbearer.allow.unverified.audience", "boolean", "false",
       doc="Lets the JWKS validator accept tokens without checking their audience when no expected audience is "
           "set."),
    _k("sasl.oauthbearer.allow.unverified.issuer", "boolean", "false",
       doc="Lets the JWKS validator accept tokens without checking their issuer when no expected issuer is set."),
    _k("sasl.oauthbearer.sub.claim.name", "string", "sub",
       doc="The token claim that names the principal of an OAUTHBEARER login."),
    _k("sasl.oauthbearer.scope.claim.name", "string", "scope",
       doc="The token claim that holds the token's scopes."),
    _k("sasl.oauthbearer.clock.skew.seconds", "int", "30",
       doc="How many seconds of difference between the broker's clock and the identity provider's are tolerated "
           "when checking a token's times."),
    # Kafka's JVM property org.apache.kafka.sasl.oauthbearer.allowed.urls: the JWKS URLs a broker may
    # read (none by default, as Kafka 4.x)
    _k("kbroker.sasl.oauthbearer.allowed.urls", "list", "",
       doc="kbroker's own, in place of Kafka's JVM property org.apache.kafka.sasl.oauthbearer.allowed.urls: the "
           "JWKS URLs the broker may read; none by default."),
    # Delegation tokens (Kafka's DelegationTokenManagerConfigs): enabled by the secret key.
    _k("delegation.token.secret.key", "password", None, sensitive=True,
       doc="The secret every node of the cluster shares to sign and check delegation tokens; without it "
           "delegation tokens are disabled (DELEGATION_TOKEN_AUTH_DISABLED)."),
    _k("delegation.token.max.lifetime.ms", "long", "604800000", minimum=1,
       doc="The longest, in ms, a delegation token can live, however often it is renewed."),
    _k("delegation.token.expiry.time.ms", "long", "86400000", minimum=1,
       doc="How long, in ms, a delegation token stays valid after it is created or renewed."),
    _k("delegation.token.expiry.check.interval.ms", "long", "3600000", minimum=1,
       doc="How often, in ms, expired delegation tokens are removed."),
]
# The keys a listener may override with ``listener.name.<listener>.`` (and the SASL ones also per
# mechanism: ``listener.name.<listener>.<mechanism>.sasl.jaas.config``).
LISTENER_KEYS = frozenset(k.name for k in SECURITY_KEYS) - {
    "sasl.mechanism.inter.broker.protocol", "sasl.mechanism.controller.protocol", "security.inter.broker.protocol",
    "authorizer.class.name", "super.users", "allow.everyone.if.no.acl.found",
    "delegation.token.secret.key", "delegation.token.max.lifetime.ms", "delegation.token.expiry.time.ms",
    "delegation.token.expiry.check.interval.ms", "kbroker.sasl.oauthbearer.allowed.urls"} | {
    "max.connections", "max.connection.creation.rate"}  # Kafka's SocketServer.ListenerReconfigurableConfigs
# The keys also given per listener and SASL mechanism: listener.name.<listener>.<mechanism>.<key>.
MECHANISM_KEYS = frozenset(k for k in LISTENER_KEYS if k.startswith("sasl.") or k == "connections.max.reauth.ms")


_LISTENER_KEY = re.compile(r"listener\.name\.([A-Za-z0-9_]+)\.(.+)")
_JAAS_KEY = re.compile(r"[A-Za-z0-9_-]+\.sasl\.jaas\.config")
_MECHANISM_KEY = re.compile(r"([A-Za-z0-9_-]+)\.(.+)")


def _listener_key(name: str) -> tuple[str, str] | None:
    """(listener, key) of a ``listener.name.<listener>.<key>`` setting kbroker knows, else None."""
    m = _LISTENER_KEY.fullmatch(name)
    if m is None:
        return None
    key = m.group(2)
    if key in LISTENER_KEYS or _JAAS_KEY.fullmatch(key):
        return m.group(1), key
    mechanism_key = _MECHANISM_KEY.fullmatch(key)
    if mechanism_key is not None and mechanism_key.group(2) in MECHANISM_KEYS:
        return m.group(1), key
    return None


# Kafka's SocketServer.ListenerReconfigurableConfigs: the listener.name.<l>. keys that are dynamic
# broker configs (kept in the dynamic layers; BrokerConfig.listener_overrides reads them).
DYNAMIC_LISTENER_KEYS = frozenset({"max.connections", "max.connection.creation.rate"})


def dynamic_listener_key(name: str) -> str | None:
    """The base key of a dynamic ``listener.name.<l>.<key>`` config, else None."""
    parts = _listener_key(name)
    return parts[1] if parts is not None and parts[1] in DYNAMIC_LISTENER_KEYS else None
