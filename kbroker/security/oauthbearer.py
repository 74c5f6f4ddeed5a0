"""SASL/OAUTHBEARER (RFC 7628) as Kafka 4.4's OAuthBearerSaslServer, with its two validators.

The client's initial response is ``n,[a=<authzid>],\\x01auth=Bearer <token>\\x01[key=value\\x01]*\\x01``
(Kafka's OAuthBearerClientInitialResponse). A token that does not validate is answered, as RFC 7628
and Kafka do, with a JSON error challenge (``{"status":"invalid_token"}``; ``insufficient_scope``
with the missing ``scope``); the client then sends ``\\x01`` and the exchange fails with that JSON
as the SASL_AUTHENTICATION_FAILED message. A valid token completes the exchange: the principal is
``User:<subject>``, and the session ends at the token's expiry (KIP-368 session lifetime).

Validators, chosen per listener as Kafka's ``listener.name.<l>.oauthbearer.sasl.server.callback.
handler.class``:

- :class:`UnsecuredValidator` (no class set: Kafka's OAuthBearerUnsecuredValidatorCallbackHandler,
  for development): unsigned JWS (``alg`` none, empty signature), the JAAS line's options
  ``unsecuredValidatorPrincipalClaimName`` (``sub``), ``unsecuredValidatorScopeClaimName``
  (``scope``), ``unsecuredValidatorRequiredScope``, ``unsecuredValidatorAllowableClockSkewMs``;
  ``exp`` required, ``iat`` optional but not in the future, ``exp`` after ``iat``.
- :class:`JwksValidator` (``org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler``:
  Kafka's BrokerJwtValidator): signed JWS verified with the keys of
  ``sasl.oauthbearer.jwks.endpoint.url`` (http(s) or ``file:``, refreshed every
  ``sasl.oauthbearer.jwks.endpoint.refresh.ms`` and when a token names an unknown key),
  ``sasl.oauthbearer.expected.audience`` and ``sasl.oauthbearer.expected.issuer`` (required unless
  ``sasl.oauthbearer.allow.unverified.audience/issuer``), ``exp`` and ``iat`` required,
  ``sasl.oauthbearer.clock.skew.seconds``, ``sasl.oauthbearer.sub.claim.name``/``scope.claim.name``.
  Signatures are checked by PyJWT with ``cryptography`` (the ``oauth`` extra).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kbroker.security.scram import SaslFailure, SaslInternalError

if TYPE_CHECKING:
    from typing_extensions import TypeIs

log = logging.getLogger(__name__)

VALIDATOR_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
# the same class under its pre-3.4 package, still accepted by Kafka
VALIDATOR_HANDLER_OLD = "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler"
UNSECURED_HANDLER = ("org.apache.kafka.common.security.oauthbearer.internals.unsecured."
                     "OAuthBearerUnsecuredValidatorCallbackHandler")

_SEP = "\x01"
_SASLNAME = r"(?:[\x01-\x2B\x2D-\x3C\x3E-\x7F]|=2C|=3D)+"
_KEY = r"[A-Za-z]+"
_VALUE = r"[\x21-\x7E \t\r\n]+"
_INITIAL = re.compile(rf"n,(?:a=(?P<authzid>{_SASLNAME}))?,{_SEP}(?P<kvpairs>(?:{_KEY}={_VALUE}{_SEP})*){_SEP}")
_AUTH = re.compile(r"(?P<scheme>\w+) +(?P<token>[-_~+/.a-zA-Z0-9]+=*)")


@dataclass(frozen=True, slots=True)
class OAuthToken:
    principal: str
    lifetime_ms: int  # absolute expiry, wall-clock ms
    scope: frozenset[str]


class TokenInvalid(Exception):
    """The token does not validate: the error challenge's status and scope (RFC 7628)."""

    def __init__(self, reason: str, status: str = "invalid_token", scope: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.scope = scope


class Validator(Protocol):
    def validate(self, token: str) -> OAuthToken: ...


def _b64url_json(part: str) -> dict[str, object]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TokenInvalid("malformed Base64 URL encoded value") from None
    try:
        value = json.loads(raw)
    except ValueError:
        raise TokenInvalid("malformed JSON") from None
    if not isinstance(value, dict):
        raise TokenInvalid("malformed JSON")
    return value


def _is_number(value: object) -> TypeIs[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class UnsecuredValidator:
    """Kafka's OAuthBearerUnsecuredValidatorCallbackHandler (and OAuthBearerUnsecuredJws)."""

    def __init__(self, options: dict[str, str]) -> None:
        def option(name: str) -> str:
            return (options.get(name) or "").strip()

        self.principal_claim = option("unsecuredValidatorPrincipalClaimName") or "sub"
        self.scope_claim = option("unsecuredValidatorScopeClaimName") or "scope"
        self.required_scope = option("unsecuredValidatorRequiredScope").split()
        skew = option("unsecuredValidatorAllowableClockSkewMs") or "0"
        try:
            self.skew_ms = int(skew)
        except ValueError:
            raise ValueError(f'For input string: "{skew}"') from None
        if self.skew_ms < 0:
            raise ValueError(f"Allowable clock skew millis must not be negative: {skew}")

    def validate(self, token: str) -> OAuthToken:
        if ".." in token:
            raise TokenInvalid("Malformed compact serialization contains '..'")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalid("Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values")
        header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
        if header.get("alg") != "none":
            raise TokenInvalid("Unsecured JWS must have 'none' for an algorithm")
        if parts[2]:
            raise TokenInvalid("Unsecured JWS must not contain a digital signature")
        scope_value = claims.get(self.scope_claim)
        if isinstance(scope_value, str):
            scope = frozenset([scope_value.strip()] if scope_value.strip() else [])
        elif isinstance(scope_value, list):
            scope = frozenset(s.strip() for s in scope_value if isinstance(s, str) and s.strip())
        elif scope_value is None:
            scope = frozenset()
        else:
            raise TokenInvalid(f"The '{self.scope_claim}' claim is not a string or list")
        exp = claims.get("exp")
        if exp is None:
            raise TokenInvalid("No expiration time in JWT")
        if not _is_number(exp):
            raise TokenInvalid("The 'exp' claim is not a number")
        principal = claims.get(self.principal_claim)
        if principal is not None and not isinstance(principal, str):
            raise TokenInvalid(f"The '{self.principal_claim}' claim is not a String")
        if not principal or not principal.strip():
            raise TokenInvalid(f"No principal name in JWT claim: {self.principal_claim}")
        now = int(time.time() * 1000)
        iat = claims.get("iat")
        if iat is not None:
            if not _is_number(iat):
                raise TokenInvalid("The 'iat' claim is not a number")
            if now + self.skew_ms < iat * 1000:
                raise TokenInvalid(f"The Issued At value ({iat} seconds) was after the indicated time ({now} ms) "
                                   f"plus allowable clock skew ({self.skew_ms} ms)")
        if now - self.skew_ms >= exp * 1000:
            raise TokenInvalid(f"The indicated time ({now} ms) minus allowable clock skew ({self.skew_ms} ms) was on "
                               f"or after the Expiration Time value ({exp} seconds)")
        if iat is not None and exp <= iat:
            raise TokenInvalid(f"The Expiration Time time ({exp} seconds) was not after the Issued At time "
                               f"({iat} seconds)")
        for required in self.required_scope:
            if required not in scope:
                required_text = "[" + ", ".join(self.required_scope) + "]"  # Java's List.toString
                raise TokenInvalid(f"The provided scope ({sorted(scope)}) was missing a required scope "
                                   f"({required}). All required scope elements: {required_text}",
                                   "insufficient_scope", required_text)
        return OAuthToken(principal, int(exp * 1000), scope)


_ALGORITHMS_BY_KEY_TYPE = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512", "ES256K"),
    "OKP": ("EdDSA",),
    "oct": ("HS256", "HS384", "HS512"),
}


class JwksValidator:
    """Kafka's BrokerJwtValidator over the JWKS of ``sasl.oauthbearer.jwks.endpoint.url``."""

    def __init__(self, url: str, audiences: list[str], issuer: str | None, *, sub_claim: str = "sub",
                 scope_claim: str = "scope", clock_skew_s: int = 30, refresh_ms: int = 3600000,
                 retry_backoff_ms: int = 100, fetch_timeout_s: float = 10.0) -> None:
        import jwt  # the oauth extra (PyJWT with cryptography)

        self._jwt = jwt
        self.url = url
        self.audiences = audiences
        self.issuer = issuer
        self.sub_claim = sub_claim
        self.scope_claim = scope_claim
        self.clock_skew_s = clock_skew_s
        self.refresh_ms = refresh_ms
        self.retry_backoff_ms = retry_backoff_ms
        self.fetch_timeout_s = fetch_timeout_s
        self._keys: dict[str | None, Any] = {}
        self._fetched = 0.0  # time.monotonic() of the last successful fetch
        self._attempted = 0.0
        self._lock = threading.Lock()
        self._refreshing = False
        self.refresh()  # at start-up, as Kafka's RefreshingHttpsJwks.init

    # -- the key set ----------------------------------------------------------------------------

    def _fetch(self) -> dict[str | None, Any]:
        import urllib.request  # here, not at module level: http.client and email cost every start ~15 ms

        with urllib.request.urlopen(self.url, timeout=self.fetch_timeout_s) as resp:  # noqa: S310 (http(s)/file)
            document = json.loads(resp.read())
        keys: dict[str | None, Any] = {}
        for entry in document.get("keys", []):
            try:
                jwk = self._jwt.PyJWK(entry)
            except Exception as exc:  # a key of a type or algorithm PyJWT does not know: skipped
                log.warning("skipping JWKS key %s from %s: %s", entry.get("kid"), self.url, exc)
                continue
            keys[entry.get("kid")] = jwk
        return keys

    def refresh(self) -> bool:
        """Fetch the key set now; False (the old keys kept) when that fails."""
        self._attempted = time.monotonic()
        try:
            keys = self._fetch()
        except Exception as exc:
            log.warning("could not retrieve the JWKS from %s: %s", self.url, exc)
            return False
        with self._lock:
            self._keys = keys
            self._fetched = time.monotonic()
        log.info("retrieved %d JWKS keys from %s", len(keys), self.url)
        return True

    def _refresh_in_background(self) -> None:
        """Refresh off the event loop (at most once per retry backoff)."""
        with self._lock:
            if self._refreshing or (time.monotonic() - self._attempted) * 1000 < self.retry_backoff_ms:
                return
            self._refreshing = True

        def run() -> None:
            try:
                self.refresh()
            finally:
                self._refreshing = False

        threading.Thread(target=run, name="jwks-refresh", daemon=True).start()

    def _key_for(self, kid: str | None) -> Any | None:
        with self._lock:
            stale = (time.monotonic() - self._fetched) * 1000 >= self.refresh_ms
            key = self._keys.get(kid)
            if key is None and kid is None and len(self._keys) == 1:
                key = next(iter(self._keys.values()))
        if key is None or stale:
            self._refresh_in_background()
        return key

    # -- validation -----------------------------------------------------------------------------

    def validate(self, token: str) -> OAuthToken:
        jwt = self._jwt
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"Could not validate the access token: {exc}") from None
        alg = header.get("alg")
        if not alg or alg == "none":
            raise TokenInvalid("Could not validate the access token: the JWS algorithm 'none' is not allowed")
        key = self._key_for(header.get("kid"))
        if key is None:
            raise TokenInvalid(f"Could not validate the access token: no JWKS key with kid {header.get('kid')}")
        # As jose4j's key resolver: any algorithm of the key's type (an RSA key verifies RS* and PS*
        # tokens whatever its JWK "alg" says), never one of another type (no HS256 with an RSA key)
        if alg not in _ALGORITHMS_BY_KEY_TYPE.get(key.key_type, ()):
            raise TokenInvalid(f"Could not validate the access token: algorithm {alg} is not for a "
                               f"{key.key_type} key")
        options: dict[str, object] = {"require": ["exp", "iat"], "verify_aud": bool(self.audiences),
                                   "verify_iss": self.issuer is not None}
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.audiences or None,
                                issuer=self.issuer, leeway=self.clock_skew_s, options=options)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"Could not validate the access token: {exc}") from None
        subject = claims.get(self.sub_claim)
        if not isinstance(subject, str) or not subject.strip():
            raise TokenInvalid(f"{self.sub_claim} value must be non-null and non-empty")
        scope_value = claims.get(self.scope_claim)
        if isinstance(scope_value, str):
            scope_list = [scope_value]
        elif isinstance(scope_value, list):
            scope_list = scope_value
        else:
            scope_list = []
        scope = set()
        for s in scope_list:
            if not isinstance(s, str) or not s.strip():
                raise TokenInvalid(f"{self.scope_claim} value must be non-null and non-empty")
            if s.strip() in scope:
                raise TokenInvalid(f"{self.scope_claim} value must not contain duplicates - {s.strip()} already present")
            scope.add(s.strip())
        exp = claims["exp"]
        if not _is_number(exp) or exp < 0:
            raise TokenInvalid("exp value must be non-negative")
        return OAuthToken(subject.strip(), int(exp * 1000), frozenset(scope))


class OAuthBearerServer:
    """One OAUTHBEARER exchange, server side (Kafka's OAuthBearerSaslServer)."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator
        self.complete = False
        self.authorization_id: str | None = None
        self.credential_expiry_ms: int | None = None
        self.extensions: dict[str, str] = {}
        self._error: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if token == b"\x01" and self._error is not None:  # the client's answer to our error challenge
            raise SaslFailure(self._error, self._error)
        self._error = None
        text = token.decode("utf-8", "replace")
        m = _INITIAL.fullmatch(text)
        if m is None:
            raise SaslFailure(f"Invalid OAUTHBEARER client first message: {text!r}")
        props = {}
        for pair in m.group("kvpairs").split(_SEP)[:-1]:
            key, _, value = pair.partition("=")
            props[key] = value
        auth = props.pop("auth", None)
        if auth is None:
            raise SaslFailure("Invalid OAUTHBEARER client first message: 'auth' not specified")
        am = _AUTH.fullmatch(auth)
        if am is None:
            raise SaslFailure("Invalid OAUTHBEARER client first message: invalid 'auth' format")
        if am.group("scheme").lower() != "bearer":
            # Kafka 4.4 formats this message with the wrong matcher (an IllegalArgumentException):
            # the connection is closed without an answer
            raise SaslInternalError(f"Invalid scheme in OAUTHBEARER client first message: {am.group('scheme')}")
        try:
            validated = self.validator.validate(am.group("token"))
        except TokenInvalid as exc:
            error = f'{{"status":"{exc.status}"'
            if exc.scope is not None:
                error += f', "scope":"{exc.scope}"'
            self._error = error + "}"
            log.debug("OAUTHBEARER token refused: %s", exc)
            return self._error.encode()
        authzid = m.group("authzid") or ""
        if authzid and authzid != validated.principal:
            message = (f"Authentication failed: Client requested an authorization id ({authzid}) that is different "
                       f"from the token's principal name ({validated.principal})")
            raise SaslFailure(message, message)
        self.extensions = props  # every extension accepted, as Kafka's default validators do
        self.authorization_id = validated.principal
        self.credential_expiry_ms = validated.lifetime_ms
        self.complete = True
        return b""
