"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's ScramSaslServer, and the
credentials it checks against.

Credentials live in the metadata log as Kafka keeps them: UserScramCredentialRecord (salt,
StoredKey, ServerKey, iterations per user and mechanism) written by AlterUserScramCredentials and
RemoveUserScramCredentialRecord; :class:`ScramCredentials` follows those records (replay included).
The password never reaches the broker: AlterUserScramCredentials carries the salted password the
client derived, from which the StoredKey and ServerKey are computed.

The primitives are the standard library's (``hashlib.pbkdf2_hmac``, ``hmac``), proofs are
compared in constant time (``hmac.compare_digest``) and the server nonce comes from ``secrets``.
Failures raise :class:`SaslFailure`: with ``client_message`` for the few Kafka reports verbatim
(SaslAuthenticationException), otherwise the connection gets Kafka's generic message, which does
not tell whether the user exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScramMechanism:
    type: int  # Kafka's ScramMechanism type byte (the records' and the admin APIs' ``mechanism``)
    name: str
    hash_name: str
    min_iterations: int = 4096
    max_iterations: int = 16384


SCRAM_SHA_256 = ScramMechanism(1, "SCRAM-SHA-256", "sha256")
SCRAM_SHA_512 = ScramMechanism(2, "SCRAM-SHA-512", "sha512")
MECHANISMS_BY_TYPE = {m.type: m for m in (SCRAM_SHA_256, SCRAM_SHA_512)}
MECHANISMS_BY_NAME = {m.name: m for m in (SCRAM_SHA_256, SCRAM_SHA_512)}


class SaslFailure(Exception):
    """Authentication failed. ``client_message``: sent to the client as is (Kafka's
    SaslAuthenticationException); None: the generic invalid-credentials message is sent."""

    def __init__(self, reason: str, client_message: str | None = None) -> None:
        super().__init__(reason)
        self.client_message = client_message


class SaslInternalError(Exception):
    """What Kafka's SaslServer throws that is no SaslException: its SaslServerAuthenticator then
    closes the connection without an answer."""


# -- the formatter (Kafka's ScramFormatter) ----------------------------------------------------


def _hmac(mechanism: ScramMechanism, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, mechanism.hash_name).digest()


def salted_password(mechanism: ScramMechanism, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(mechanism.hash_name, password.encode(), salt, iterations)


def client_key(mechanism: ScramMechanism, salted: bytes) -> bytes:
    return _hmac(mechanism, salted, b"Client Key")


def stored_key(mechanism: ScramMechanism, key: bytes) -> bytes:
    return hashlib.new(mechanism.hash_name, key).digest()


def server_key(mechanism: ScramMechanism, salted: bytes) -> bytes:
    return _hmac(mechanism, salted, b"Server Key")


@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def credential_from_salted(mechanism: ScramMechanism, salt: bytes, salted: bytes, iterations: int) -> ScramCredential:
    """What the controller stores for an upsertion (Kafka's ScramControlManager.finishUpsertion)."""
    if not salted:
        raise ValueError("Empty key")  # as Java's SecretKeySpec refuses an empty HMAC key
    return ScramCredential(salt, stored_key(mechanism, client_key(mechanism, salted)),
                           server_key(mechanism, salted), iterations)


# -- the credentials in the metadata log ------------------------------------------------------


class ScramCredentials:
    """(user, mechanism type) -> credential, kept from the metadata log's records."""

    def __init__(self) -> None:
        self.credentials: dict[tuple[str, int], ScramCredential] = {}

    def on_record(self, record: Any) -> None:
        name = type(record).__name__
        if name == "UserScramCredentialRecord":
            self.credentials[(record.name, record.mechanism)] = ScramCredential(
                bytes(record.salt), bytes(record.stored_key), bytes(record.server_key), record.iterations)
        elif name == "RemoveUserScramCredentialRecord":
            if self.credentials.pop((record.name, record.mechanism), None) is None:
                log.warning("RemoveUserScramCredentialRecord for %s (mechanism %d) that has no credential",
                            record.name, record.mechanism)

    def get(self, user: str, mechanism: ScramMechanism) -> ScramCredential | None:
        return self.credentials.get((user, mechanism.type))

    def users(self) -> dict[str, dict[int, int]]:
        """user -> {mechanism type: iterations}."""
        out: dict[str, dict[int, int]] = {}
        for (user, mech), cred in self.credentials.items():
            out.setdefault(user, {})[mech] = cred.iterations
        return out


# -- the messages (Kafka's ScramMessages) ------------------------------------------------------

_SASLNAME = r"(?:[\x01-\x2B\x2D-\x3C\x3E-\x7F]|=2C|=3D)+"
_VALUE = r"[\x01-\x2B\x2D-\x7F]+"
_PRINTABLE = r"[\x21-\x2B\x2D-\x7E]+"
_BASE64 = r"(?:[a-zA-Z0-9/+]{4})*(?:[a-zA-Z0-9/+]{3}=|[a-zA-Z0-9/+]{2}==)?"
_RESERVED = rf"(?:m={_VALUE},)?"
_EXTENSIONS = rf"(?:,[A-Za-z]+={_VALUE})*"
_CLIENT_FIRST = re.compile(
    rf"(?P<gs2flag>[yn]),(?:a=(?P<authzid>{_SASLNAME}))?,{_RESERVED}n=(?P<saslname>{_SASLNAME}),"
    rf"r=(?P<nonce>{_PRINTABLE})(?P<extensions>{_EXTENSIONS})"
)
_CLIENT_FINAL = re.compile(
    rf"c=(?P<channel>{_BASE64}),r=(?P<nonce>{_PRINTABLE})(?P<extensions>{_EXTENSIONS}),p=(?P<proof>{_BASE64})"
)


def _username(saslname: str) -> str:
    return saslname.replace("=2C", ",").replace("=3D", "=")


def _extensions(text: str) -> dict[str, str]:
    out = {}
    for item in text.split(",")[1:]:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def secure_random_string() -> str:
    """130 random bits in base 36, as Kafka's ScramFormatter.secureRandomString (the server's nonce;
    its bytes are the salt `kafka-storage.sh format --add-scram` makes, scram_bootstrap.py)."""
    value = secrets.randbits(130)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, r = divmod(value, 36)
        out = digits[r] + out
    return out or "0"


class TokenLogin(Protocol):
    """What a SCRAM login reads of a delegation token (kbroker.security.tokens.TokenInfo)."""

    @property
    def owner(self) -> str: ...
    @property
    def expiry_ms(self) -> int: ...


class TokenStore(Protocol):
    """The delegation tokens a client may log in with (kbroker.security.tokens.DelegationTokens)."""

    def login(self, token_id: str, mechanism: ScramMechanism) -> tuple[TokenLogin, ScramCredential] | None: ...


class ScramServer:
    """One SCRAM exchange, server side: client-first -> server-first, client-final -> server-final."""

    def __init__(self, mechanism: ScramMechanism, credentials: ScramCredentials,
                 tokens: TokenStore | None = None) -> None:
        """``tokens``: the delegation tokens (kbroker.security.tokens.DelegationTokens) a client
        may log in with (``tokenauth=true``), or None."""
        self.mechanism = mechanism
        self.credentials = credentials
        self.tokens = tokens
        self.complete = False
        self.authorization_id: str | None = None
        # a delegation token login: the principal is the token owner's, flagged token-authenticated,
        # and the session ends at the token's expiry (Kafka's CREDENTIAL.LIFETIME.MS property)
        self.token_authenticated = False
        self.credential_expiry_ms: int | None = None
        self._state = "first"
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None

    def evaluate(self, token: bytes) -> bytes:
        try:
            if self._state == "first":
                return self._first(token)
            if self._state == "final":
                return self._final(token)
            raise SaslFailure(f"Unexpected challenge in Sasl server state {self._state}")
        except SaslFailure:
            self._state = "failed"
            self._credential = None
            raise

    def _first(self, token: bytes) -> bytes:
        text = token.decode("utf-8", "replace")
        m = _CLIENT_FIRST.fullmatch(text)
        if m is None:
            raise SaslFailure(f"Invalid SCRAM client first message format: {text}")
        if m.group("gs2flag") != "n":
            raise SaslFailure("Channel binding is not supported")
        extensions = _extensions(m.group("extensions"))
        username = _username(m.group("saslname"))
        credential: ScramCredential | None
        if extensions.get("tokenauth", "").lower() == "true":  # Kafka's ScramExtensions.tokenAuthenticated
            login = self.tokens.login(username, self.mechanism) if self.tokens is not None else None
            if login is None:
                raise SaslFailure(f"Token Authentication failed: Invalid tokenId : {username}")
            info, credential = login
            _kind, _, owner = info.owner.partition(":")
            self.token_authenticated = True
            self.credential_expiry_ms = info.expiry_ms
        else:
            owner = username
            credential = self.credentials.get(username, self.mechanism)
        if credential is None:
            raise SaslFailure("Authentication failed: Invalid user credentials")
        authzid = m.group("authzid") or ""
        if authzid and _username(authzid) != username:
            message = "Authentication failed: Client requested an authorization id that is different from username"
            raise SaslFailure(message, message)
        if credential.iterations < self.mechanism.min_iterations:
            raise SaslFailure(f"Iterations {credential.iterations} is less than the minimum "
                              f"{self.mechanism.min_iterations} for {self.mechanism.name}")
        self._nonce = m.group("nonce") + secure_random_string()
        self._server_first = (f"r={self._nonce},s={base64.b64encode(credential.salt).decode()},"
                              f"i={credential.iterations}")
        # client-first-message-bare, as Kafka rebuilds it (the reserved m= attribute left out)
        self._client_first_bare = f"n={m.group('saslname')},r={m.group('nonce')}{m.group('extensions')}"
        self._credential = credential
        self.authorization_id = owner
        self._state = "final"
        return self._server_first.encode()

    def _final(self, token: bytes) -> bytes:
        text = token.decode("utf-8", "replace")
        m = _CLIENT_FINAL.fullmatch(text)
        if m is None:
            raise SaslFailure(f"Invalid SCRAM client final message format: {text}")
        if m.group("nonce") != self._nonce:
            raise SaslFailure("Invalid client nonce in the final client message.")
        credential = self._credential
        assert credential is not None
        without_proof = text[: text.rindex(",p=")]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        try:
            proof = base64.b64decode(m.group("proof"), validate=True)
        except binascii.Error:
            raise SaslFailure("Invalid client credentials") from None
        signature = _hmac(self.mechanism, credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise SaslFailure("Invalid client credentials")
        key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(stored_key(self.mechanism, key), credential.stored_key):
            raise SaslFailure("Invalid client credentials")
        server_signature = _hmac(self.mechanism, credential.server_key, auth_message)
        self._credential = None
        self._state = "complete"
        self.complete = True
        return b"v=" + base64.b64encode(server_signature)
