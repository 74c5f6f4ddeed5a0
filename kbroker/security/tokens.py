"""Delegation tokens as Kafka 4.4 keeps them (DelegationTokenManager, DelegationTokenCache,
DelegationTokenControlManager).

A token is a DelegationTokenRecord in the metadata log (owner, requester, renewers, issue, max and
expiry timestamps, id), removed by a RemoveDelegationTokenRecord; :class:`DelegationTokens` follows
those records (replay and snapshots included). Its HMAC is HmacSHA512 of the token id under
``delegation.token.secret.key`` (the key every broker and controller of the cluster shares), never
stored: every node computes it. A client logs in with SCRAM as user ``<token id>`` with password
``base64(hmac)`` and the ``tokenauth=true`` extension; the SCRAM credentials of each token are
derived from that password as Kafka's ScramFormatter does (4096 iterations, a random salt), on
first use. Without the secret key delegation tokens are disabled: no token logs in, and the
token APIs answer DELEGATION_TOKEN_AUTH_DISABLED.

Principals are Kafka's ``Type:name`` strings (KafkaPrincipal.toString), as the records hold them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbroker.security.scram import (
    ScramCredential,
    ScramMechanism,
    credential_from_salted,
    salted_password,
)
from kbroker_protocol.messages.metadata_records import DelegationTokenRecord

if TYPE_CHECKING:
    from kbroker.config.broker_config import BrokerConfig

log = logging.getLogger(__name__)

ERROR_TIMESTAMP = -1  # Kafka's DelegationTokenManager.ERROR_TIMESTAMP
MAX_RECORDS_PER_EXPIRATION = 1000  # Kafka's DelegationTokenControlManager
LONG_MAX = 2**63 - 1


def now_ms() -> int:
    """Wall-clock milliseconds: token timestamps are absolute times, as Kafka's Time.SYSTEM."""
    return int(time.time() * 1000)


def add_ms(now: int, duration: int) -> int:
    """``now + duration`` capped at Long.MAX_VALUE (Kafka's DelegationTokenControlManager.sum)."""
    return LONG_MAX if now > LONG_MAX - duration else now + duration


def split_principal(principal: str) -> tuple[str, str]:
    """Kafka's SecurityUtils.parseKafkaPrincipal: ``Type:name`` split at the first colon."""
    kind, sep, name = principal.partition(":")
    if not sep:
        raise ValueError(f"expected a string in format principalType:principalName but got {principal}")
    return kind, name


@dataclass(slots=True)
class TokenInfo:
    """Kafka's TokenInformation, from a DelegationTokenRecord."""

    token_id: str
    owner: str
    requester: str
    renewers: list[str]
    issue_ms: int
    max_ms: int
    expiry_ms: int
    credentials: dict[int, ScramCredential] = field(default_factory=dict)  # mechanism type -> credential

    def owner_or_renewer(self, principal: str) -> bool:
        """Kafka's TokenInformation.ownerOrRenewer (the requester counts too)."""
        return principal in (self.owner, self.requester) or principal in self.renewers

    def may_renew(self, principal: str) -> bool:
        """Kafka's DelegationTokenControlManager.allowedToRenew: the owner or a renewer."""
        return principal == self.owner or principal in self.renewers

    def expired(self, now: int) -> bool:
        return self.max_ms < now or self.expiry_ms < now

    def to_record(self, expiry_ms: int | None = None) -> DelegationTokenRecord:
        return DelegationTokenRecord(owner=self.owner, requester=self.requester, renewers=list(self.renewers),
                                     issue_timestamp=self.issue_ms, max_timestamp=self.max_ms,
                                     expiration_timestamp=self.expiry_ms if expiry_ms is None else expiry_ms,
                                     token_id=self.token_id)


class DelegationTokens:
    """The tokens of the metadata log and the settings of ``delegation.token.*``."""

    def __init__(self, config: BrokerConfig) -> None:
        key = config.get("delegation.token.secret.key")
        self.secret_key: bytes | None = key.encode("utf-8") if key else None
        self.max_lifetime_ms = int(config["delegation.token.max.lifetime.ms"])
        self.expiry_time_ms = int(config["delegation.token.expiry.time.ms"])
        self.check_interval_ms = int(config["delegation.token.expiry.check.interval.ms"])
        self.tokens: dict[str, TokenInfo] = {}
        self._by_hmac: dict[bytes, str] = {}

    @property
    def enabled(self) -> bool:
        """Kafka's DelegationTokenManager.isEnabled: a non-empty secret key."""
        return self.secret_key is not None

    def hmac(self, token_id: str) -> bytes:
        """HmacSHA512(token id) under the secret key (Kafka's DelegationTokenManager.createHmac)."""
        assert self.secret_key is not None
        return hmac.new(self.secret_key, token_id.encode("utf-8"), hashlib.sha512).digest()

    # -- the metadata records ---------------------------------------------------------------

    def on_record(self, record: Any) -> None:
        name = type(record).__name__
        if name == "DelegationTokenRecord":
            old = self.tokens.get(record.token_id)
            info = TokenInfo(record.token_id, record.owner, record.requester, list(record.renewers or ()),
                             record.issue_timestamp, record.max_timestamp, record.expiration_timestamp)
            if old is not None:  # a renewal or expiry change: same id, same HMAC, same credentials
                info.credentials = old.credentials
            self.tokens[record.token_id] = info
            if self.enabled:
                self._by_hmac[self.hmac(record.token_id)] = record.token_id
        elif name == "RemoveDelegationTokenRecord":
            if self.tokens.pop(record.token_id, None) is None:
                log.warning("RemoveDelegationTokenRecord for token %s that does not exist", record.token_id)
            if self.enabled:
                self._by_hmac.pop(self.hmac(record.token_id), None)

    # -- lookups ------------------------------------------------------------------------------

    def for_hmac(self, token_hmac: bytes) -> TokenInfo | None:
        """The token whose HMAC this is (Kafka's DelegationTokenCache.tokenForHmac)."""
        token_id = self._by_hmac.get(bytes(token_hmac))
        return None if token_id is None else self.tokens.get(token_id)

    def token(self, token_id: str) -> TokenInfo | None:
        """A token that may log in: none while tokens are disabled (Kafka's broker then has none
        in its cache)."""
        return self.tokens.get(token_id) if self.enabled else None

    def login(self, token_id: str, mechanism: ScramMechanism) -> tuple[TokenInfo, ScramCredential] | None:
        """A SCRAM login with token ``token_id``: the token and its credential (None: no such token
        may log in). ``kbroker.security.scram.TokenStore``."""
        info = self.token(token_id)
        return None if info is None else (info, self.scram_credential(info, mechanism))

    def scram_credential(self, info: TokenInfo, mechanism: ScramMechanism) -> ScramCredential:
        """The token's SCRAM credential for ``mechanism``: password base64(HMAC), the mechanism's
        minimum iterations, a random salt (Kafka's DelegationTokenManager.prepareScramCredentials),
        made on first use."""
        credential = info.credentials.get(mechanism.type)
        if credential is None:
            password = base64.b64encode(self.hmac(info.token_id)).decode("ascii")
            salt = secrets.token_bytes(16)
            iterations = mechanism.min_iterations
            credential = credential_from_salted(
                mechanism, salt, salted_password(mechanism, password, salt, iterations), iterations)
            info.credentials[mechanism.type] = credential
        return credential

    def expired_tokens(self, now: int) -> list[TokenInfo]:
        """Tokens past their expiry or max timestamp, at most MAX_RECORDS_PER_EXPIRATION."""
        out = [t for t in self.tokens.values() if t.expired(now)]
        return out[:MAX_RECORDS_PER_EXPIRATION]
