"""TLS for SSL and SASL_SSL listeners, from Kafka's ``ssl.*`` keys, and the client certificate's
principal.

Key stores are read in PEM form, as Kafka's ``ssl.keystore.type=PEM``: the private key and its
certificate chain inline (``ssl.keystore.key``, ``ssl.keystore.certificate.chain``) or in one file
(``ssl.keystore.location``), the key optionally encrypted (``ssl.key.password``); trust stores
likewise (``ssl.truststore.certificates`` or ``ssl.truststore.location``). The store settings are
checked with Kafka's rules and messages (DefaultSslEngineFactory). JKS and PKCS12 stores are
refused with a message naming the key: reading them needs a third-party package, and kbroker keeps
its dependencies few (convert with ``keytool -importkeystore`` / ``openssl pkcs12 -nodes``).

The principal of a client certificate is its subject as Java's ``X500Principal.getName()`` writes
it (RFC 2253: the most specific attribute first, Kafka's default ``DEFAULT`` rule gives exactly
that string), passed through ``ssl.principal.mapping.rules`` (Kafka's SslPrincipalMapper);
without a certificate the principal is ``ANONYMOUS``.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kbroker.config import BrokerConfig, ConfigError

PEM = "PEM"

_VERIFY = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
# TLS 1.3 suites: OpenSSL enables all of them and Python's ssl module cannot restrict them.
_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                 "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"}


class _Settings:
    """One listener's view of the ssl.* keys (``listener.name.<l>.`` first)."""

    def __init__(self, config: BrokerConfig, listener: str) -> None:
        self.config = config
        self.listener = listener

    def __call__(self, key: str) -> Any:
        return self.config.listener_value(self.listener, key)

    def key_name(self, key: str) -> str:
        prefixed = f"listener.name.{self.listener.lower()}.{key}"
        return prefixed if (self.listener, key) in self.config.listener_overrides else key


def _invalid(key: str, value: object, message: str) -> ConfigError:
    """Kafka's message, with the key it is about when the message does not name it."""
    return ConfigError(key, value, message, message if key in message else f"{message} ({key})")


def build_server_context(config: BrokerConfig, listener: str) -> ssl.SSLContext:
    """The server-side SSLContext of ``listener``; raises :class:`ConfigError` on bad settings."""
    get = _Settings(config, listener)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_protocols(ctx, get)
    _set_ciphers(ctx, get)
    _load_keystore(ctx, get)
    _load_truststore(ctx, get)
    ctx.verify_mode = _VERIFY[get("ssl.client.auth")]
    return ctx


def _set_protocols(ctx: ssl.SSLContext, get: _Settings) -> None:
    key = get.key_name("ssl.enabled.protocols")
    names = get("ssl.enabled.protocols")
    if not names:
        raise _invalid(key, "", f"{key} must name at least one protocol (TLSv1.2, TLSv1.3)")
    unknown = [n for n in names if n not in _TLS_VERSIONS]
    if unknown:
        raise _invalid(key, ",".join(names), f"Unsupported TLS protocol {unknown[0]} in {key}; "
                       f"supported: {', '.join(_TLS_VERSIONS)}")
    versions = sorted(_TLS_VERSIONS[n] for n in names)
    ctx.minimum_version = versions[0]
    ctx.maximum_version = versions[-1]


def _openssl_cipher(name: str) -> str:
    """An IANA/Java cipher suite name (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) as OpenSSL names it
    (ECDHE-RSA-AES128-GCM-SHA256); OpenSSL names pass through."""
    m = re.fullmatch(r"TLS_(\w+?)_WITH_(\w+)", name)
    if m is None:
        return name
    kx = {"RSA": ""}.get(m.group(1), m.group(1).replace("_", "-"))
    cipher = m.group(2)
    cipher = re.sub(r"AES_(\d+)_", r"AES\1-", cipher)
    cipher = cipher.replace("CHACHA20_POLY1305", "CHACHA20-POLY1305")
    cipher = cipher.replace("_", "-")
    if cipher.endswith("-CBC-SHA"):
        cipher = cipher[: -len("-CBC-SHA")] + "-SHA"
    elif "-CBC-" in cipher:
        cipher = cipher.replace("-CBC-", "-")
    if cipher.startswith("CHACHA20-POLY1305-"):
        cipher = "CHACHA20-POLY1305"
    return f"{kx}-{cipher}" if kx else cipher


def _set_ciphers(ctx: ssl.SSLContext, get: _Settings) -> None:
    key = get.key_name("ssl.cipher.suites")
    suites = get("ssl.cipher.suites")
    if not suites:
        return  # Kafka: empty means the TLS implementation's defaults
    tls12 = [s for s in suites if s not in _TLS13_SUITES]
    if not tls12:
        # Only TLS 1.3 suites named: TLS 1.2 gets none, so only TLS 1.3 can be negotiated.
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    try:
        ctx.set_ciphers(":".join(_openssl_cipher(s) for s in tls12))
    except ssl.SSLError:
        raise _invalid(key, ",".join(suites), f"None of the cipher suites in {key} is available: "
                       f"{', '.join(suites)}") from None
    available = {c["name"] for c in ctx.get_ciphers()}
    missing = [s for s in tls12 if _openssl_cipher(s) not in available]
    if missing:
        raise _invalid(key, ",".join(suites), f"Unsupported cipher suite {missing[0]} in {key}")


def _load_keystore(ctx: ssl.SSLContext, get: _Settings) -> None:
    """Kafka's DefaultSslEngineFactory.createKeystore checks, then the PEM store."""
    store_type = get("ssl.keystore.type")
    path = get("ssl.keystore.location")
    password = get("ssl.keystore.password")
    key_password = get("ssl.key.password")
    private_key = get("ssl.keystore.key")
    chain = get("ssl.keystore.certificate.chain")

    def fail(key: str, value: object, message: str) -> ConfigError:
        return _invalid(get.key_name(key), value, message)

    if private_key is not None:
        if store_type != PEM:
            raise fail("ssl.keystore.key", "[hidden]",
                       f"SSL private key can be specified only for PEM, but key store type is {store_type}.")
        if chain is None:
            raise fail("ssl.keystore.certificate.chain", None,
                       "SSL private key is specified, but certificate chain is not specified.")
        if path is not None:
            raise fail("ssl.keystore.location", path,
                       "Both SSL key store location and separate private key are specified.")
        if password is not None:
            raise fail("ssl.keystore.password", "[hidden]", "SSL key store password cannot be specified with PEM "
                       "format, only key password may be specified.")
        _load_inline_chain(ctx, chain, private_key, key_password, get)
        return
    if chain is not None:
        raise fail("ssl.keystore.key", None, "SSL certificate chain is specified, but private key is not specified")
    if path is None:
        if password is not None:
            raise fail("ssl.keystore.password", "[hidden]",
                       "SSL key store is not specified, but key store password is specified.")
        raise fail("ssl.keystore.location", None, "An SSL listener needs a key store: set ssl.keystore.type=PEM "
                   "with ssl.keystore.location, or ssl.keystore.key and ssl.keystore.certificate.chain")
    if store_type != PEM:
        raise fail("ssl.keystore.type", store_type, _unsupported_store(get.key_name("ssl.keystore.type"), store_type))
    if password is not None:
        raise fail("ssl.keystore.password", "[hidden]", "SSL key store password cannot be specified with PEM "
                   "format, only key password may be specified")
    try:
        ctx.load_cert_chain(path, password=_password(key_password))
    except FileNotFoundError:
        raise fail("ssl.keystore.location", path, f"Failed to load PEM SSL keystore {path}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise fail("ssl.keystore.location", path, f"Failed to load PEM SSL keystore {path}: "
                   f"{_ssl_reason(exc, key_password)}") from None


def _load_inline_chain(ctx: ssl.SSLContext, chain: str, private_key: str, key_password: str | None,
                       get: _Settings) -> None:
    """Python's ssl loads keys only from files: the PEM text goes to a private temporary file
    (mode 0600, removed at once)."""
    if "-----BEGIN" not in chain:
        raise _invalid(get.key_name("ssl.keystore.certificate.chain"), "[hidden]",
                       "Invalid PEM keystore configs: At least one certificate expected, but none found")
    if "PRIVATE KEY-----" not in private_key:
        raise _invalid(get.key_name("ssl.keystore.key"), "[hidden]",
                       "Invalid PEM keystore configs: Private key not provided")
    fd, name = tempfile.mkstemp(prefix="kbroker-key-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_pem_text(private_key) + "\n" + _pem_text(chain) + "\n")
        ctx.load_cert_chain(name, password=_password(key_password))
    except (OSError, ssl.SSLError) as exc:
        raise _invalid(get.key_name("ssl.keystore.key"), "[hidden]",
                       f"Invalid PEM keystore configs: {_ssl_reason(exc, key_password)}") from None
    finally:
        os.unlink(name)


def _load_truststore(ctx: ssl.SSLContext, get: _Settings) -> None:
    """Kafka's createTruststore checks, then the PEM certificates; without a trust store, the
    system's CA certificates (as the JVM's default trust store)."""
    store_type = get("ssl.truststore.type")
    path = get("ssl.truststore.location")
    password = get("ssl.truststore.password")
    certs = get("ssl.truststore.certificates")

    def fail(key: str, value: object, message: str) -> ConfigError:
        return _invalid(get.key_name(key), value, message)

    if certs is not None:
        if store_type != PEM:
            raise fail("ssl.truststore.certificates", "[hidden]",
                       f"SSL trust store certs can be specified only for PEM, but trust store type is {store_type}.")
        if path is not None:
            raise fail("ssl.truststore.location", path,
                       "Both SSL trust store location and separate trust certificates are specified.")
        if password is not None:
            raise fail("ssl.truststore.password", "[hidden]", "SSL trust store password cannot be specified for PEM format.")
        try:
            ctx.load_verify_locations(cadata=_pem_text(certs))
        except (ssl.SSLError, ValueError) as exc:
            raise fail("ssl.truststore.certificates", "[hidden]", f"Invalid PEM truststore configs: {exc}") from None
        return
    if path is None:
        if password is not None:
            raise fail("ssl.truststore.password", "[hidden]",
                       "SSL trust store is not specified, but trust store password is specified.")
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return
    if store_type != PEM:
        raise fail("ssl.truststore.type", store_type,
                   _unsupported_store(get.key_name("ssl.truststore.type"), store_type))
    if password is not None:
        raise fail("ssl.truststore.password", "[hidden]", "SSL trust store password cannot be specified for PEM format.")
    try:
        ctx.load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise fail("ssl.truststore.location", path, f"Failed to load PEM SSL truststore {path}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise fail("ssl.truststore.location", path, f"Failed to load PEM SSL truststore {path}: {exc}") from None


def _unsupported_store(key: str, store_type: str) -> str:
    return (f"Key store type {store_type} is not supported by kbroker ({key}): only PEM stores are read. "
            f"Set {key}=PEM and give the certificates and key in PEM form (convert a {store_type} store with "
            "keytool -importkeystore -deststoretype PKCS12, then openssl pkcs12 -nodes)")


def _pem_text(value: str) -> str:
    """Inline PEM as Kafka takes it from a properties file: line breaks may have been written as
    spaces (``\\n`` escapes are already undone by the properties reader)."""
    text = value.strip()
    if "\n" in text:
        return text
    blocks = re.findall(r"(-----BEGIN [A-Z0-9 ]+-----)(.*?)(-----END [A-Z0-9 ]+-----)", text, re.S)
    out = []
    for begin, body, end in blocks:
        out.append("\n".join([begin, *body.split(), end]))
    return "\n".join(out) if out else text


def _password(value: str | None) -> Callable[[], str] | None:
    return None if value is None else (lambda: value)


def _ssl_reason(exc: BaseException, key_password: str | None) -> str:
    text = str(exc)
    if isinstance(exc, ssl.SSLError) and key_password is None and ("PEM lib" in text or "bad decrypt" in text):
        return f"{text} (an encrypted private key needs ssl.key.password)"
    return text


# ---------------------------------------------------------------------------------------------
# The client certificate's principal

# RFC 2253 attribute keywords Java's X500Principal.getName() writes; other attributes are written
# as their OID with the DER value in hex.
_KEYWORDS = {
    "commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
    "domainComponent": "DC", "userId": "UID",
}
_OIDS = {
    "emailAddress": ("1.2.840.113549.1.9.1", 0x16), "serialNumber": ("2.5.4.5", 0x13),
    "title": ("2.5.4.12", 0x0C), "surname": ("2.5.4.4", 0x0C), "givenName": ("2.5.4.42", 0x0C),
    "initials": ("2.5.4.43", 0x0C), "generationQualifier": ("2.5.4.44", 0x0C),
    "dnQualifier": ("2.5.4.46", 0x13), "pseudonym": ("2.5.4.65", 0x0C), "name": ("2.5.4.41", 0x0C),
    "businessCategory": ("2.5.4.15", 0x0C), "postalCode": ("2.5.4.17", 0x0C),
}
_ESCAPED = set(',=+<>#;"\\')


def _escape(value: str) -> str:
    out = ["\\" + c if c in _ESCAPED else c for c in value]
    if value.startswith(" "):
        out[0] = "\\ "
    if value.endswith(" ") and len(value) > 1:
        out[-1] = "\\ "
    return "".join(out)


def _der_hex(tag: int, value: str) -> str:
    data = value.encode()
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(size)]) + size
    return "#" + (bytes([tag]) + length + data).hex()


def distinguished_name(subject: tuple[Any, ...]) -> str:
    """A certificate subject (``SSLObject.getpeercert()['subject']``) as Java's
    ``X500Principal.getName()`` writes it: RDNs most specific first, comma-separated."""
    rdns = []
    for rdn in reversed(subject):
        avas = []
        for name, value in rdn:
            keyword = _KEYWORDS.get(name)
            if keyword is not None:
                avas.append(f"{keyword}={_escape(value)}")
            elif name in _OIDS:
                oid, tag = _OIDS[name]
                avas.append(f"{oid}={_der_hex(tag, value)}")
            elif re.fullmatch(r"[0-9]+(\.[0-9]+)+", name):
                avas.append(f"{name}={_der_hex(0x0C, value)}")
            else:
                avas.append(f"{name}={_escape(value)}")
        rdns.append("+".join(avas))
    return ",".join(rdns)


_RULE = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_RULE_SPLITTER = re.compile(r"\s*(" + _RULE + r")\s*(,\s*|$)")
_RULE_PARSER = re.compile(_RULE)
_BACKREF = re.compile(r"\$(\d+)")


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    lower: bool = False
    upper: bool = False

    def apply(self, dn: str) -> str | None:
        if self.pattern is None:
            return dn
        if not self.pattern.fullmatch(dn):
            return None
        result = self.pattern.sub(_java_replacement(self.replacement, self.pattern.groups), dn)
        if self.lower:
            return result.lower()
        if self.upper:
            return result.upper()
        return result


def _java_replacement(replacement: str, groups: int) -> str:
    """A Java ``replaceAll`` replacement (``$1``, ``\\$``) in Python's ``re.sub`` syntax; a
    reference past the pattern's groups is shortened as Kafka's mapper does, or kept literally."""
    out = []
    i = 0
    while i < len(replacement):
        c = replacement[i]
        if c == "\\" and i + 1 < len(replacement):
            out.append(replacement[i + 1].replace("\\", "\\\\"))
            i += 2
            continue
        m = _BACKREF.match(replacement, i)
        if c == "$" and m:
            digits = m.group(1)
            index = int(digits)
            while index > groups and index >= 10:
                index //= 10
            used = len(str(index))
            if index > groups:
                out.append("$")
                i += 1
                continue
            out.append(f"\\g<{index}>")
            i += 1 + used
            continue
        out.append("\\\\" if c == "\\" else c)
        i += 1
    return "".join(out)


class PrincipalMapper:
    """Kafka's SslPrincipalMapper: ``ssl.principal.mapping.rules``, first rule that matches wins."""

    def __init__(self, rules: str, key: str = "ssl.principal.mapping.rules") -> None:
        self.rules: list[_Rule] = []
        for m in _RULE_SPLITTER.finditer(rules.strip()):
            text = m.group(1)
            parsed = _RULE_PARSER.match(text)
            if parsed is None or parsed.end() != len(text):
                raise ConfigError(key, rules, f"Invalid rule: `{text}`, unmatched substring: "
                                  f"`{text[parsed.end() if parsed else 0:]}`")
            if parsed.group(1):
                self.rules.append(_Rule(None))
            elif parsed.group(2) is not None:
                try:
                    pattern = re.compile(parsed.group(2))
                except re.error as exc:
                    raise ConfigError(key, rules, f"Invalid rule: `{text}`: {exc}") from None
                self.rules.append(_Rule(pattern, parsed.group(3), parsed.group(4) == "L", parsed.group(4) == "U"))

    def name(self, dn: str) -> str:
        for rule in self.rules:
            result = rule.apply(dn)
            if result is not None:
                return result
        raise LookupError(f"No rules apply to {dn}")


def certificate_principal(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, mapper: PrincipalMapper) -> str | None:
    """An SSL listener's principal for a connection (Kafka's SslPrincipalMapper on the client
    certificate's subject DN): ``User:<name>``, or None without a client certificate (the
    connection is then ANONYMOUS). Raises LookupError when no rule maps the DN (Kafka refuses the
    connection)."""
    cert = None if ssl_object is None else ssl_object.getpeercert()
    if not cert:
        return None
    subject = cert.get("subject", ())
    return "User:" + mapper.name(distinguished_name(subject if isinstance(subject, tuple) else ()))
