"""ACLs and authorization as Kafka's StandardAuthorizer (``authorizer.class.name=
org.apache.kafka.metadata.authorizer.StandardAuthorizer``).

ACLs are metadata records (AccessControlEntryRecord, RemoveAccessControlEntryRecord) written by
CreateAcls/DeleteAcls; :class:`Authorizer` follows them (replay included). A request is allowed
when its principal is one of ``super.users``; otherwise the ACLs whose resource pattern matches
(LITERAL by name or the ``*`` wildcard, PREFIXED by prefix) are looked at: a matching DENY wins, then
a matching ALLOW; with no ACL on the resource at all, ``allow.everyone.if.no.acl.found`` decides,
and with ACLs on the resource but none matching, the request is denied. An ACL matches a request
when its principal is the request's or ``User:*``, its host the client's address, ``*`` or a CIDR
range holding it, and its operation the request's or ALL; an ALLOW of READ, WRITE, DELETE or ALTER
also allows DESCRIBE, and of ALTER_CONFIGS also DESCRIBE_CONFIGS (DENY ACLs imply nothing).

Without an authorizer configured every principal may do everything, and the ACL APIs answer
SECURITY_DISABLED, as Kafka does.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.security.replication_quotas import ConfigLookup
    from kbroker_protocol.messages.metadata_records import AccessControlEntryRecord

log = logging.getLogger(__name__)

STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"

# Kafka's ResourceType, PatternType, AclOperation, AclPermissionType codes
UNKNOWN, ANY = 0, 1
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN, USER = 2, 3, 4, 5, 6, 7
MATCH, LITERAL, PREFIXED = 2, 3, 4
(ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
 IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS, TWO_PHASE_COMMIT) = range(2, 16)
DENY, ALLOW = 2, 3

RESOURCE_TYPES = {0: "UNKNOWN", 1: "ANY", 2: "TOPIC", 3: "GROUP", 4: "CLUSTER", 5: "TRANSACTIONAL_ID",
                  6: "DELEGATION_TOKEN", 7: "USER"}
PATTERN_TYPES = {0: "UNKNOWN", 1: "ANY", 2: "MATCH", 3: "LITERAL", 4: "PREFIXED"}
OPERATIONS = {0: "UNKNOWN", 1: "ANY", 2: "ALL", 3: "READ", 4: "WRITE", 5: "CREATE", 6: "DELETE", 7: "ALTER",
              8: "DESCRIBE", 9: "CLUSTER_ACTION", 10: "DESCRIBE_CONFIGS", 11: "ALTER_CONFIGS",
              12: "IDEMPOTENT_WRITE", 13: "CREATE_TOKENS", 14: "DESCRIBE_TOKENS", 15: "TWO_PHASE_COMMIT"}
PERMISSIONS = {0: "UNKNOWN", 1: "ANY", 2: "DENY", 3: "ALLOW"}

_IMPLIES_DESCRIBE = {DESCRIBE, READ, WRITE, DELETE, ALTER}
_IMPLIES_DESCRIBE_CONFIGS = {DESCRIBE_CONFIGS, ALTER_CONFIGS}


class AclError(ValueError):
    """An ACL or filter Kafka refuses (INVALID_REQUEST); the message is Kafka's."""


@dataclass(frozen=True, slots=True)
class Acl:
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Kafka's AclBindingFilter: None and ANY match everything."""

    resource_type: int
    resource_name: str | None
    pattern_type: int
    principal: str | None
    host: str | None
    operation: int
    permission_type: int

    def unknown(self) -> bool:
        return UNKNOWN in (self.resource_type, self.pattern_type, self.operation, self.permission_type)

    def matches(self, acl: Acl) -> bool:
        if self.resource_type != ANY and self.resource_type != acl.resource_type:
            return False
        if self.pattern_type not in (ANY, MATCH) and self.pattern_type != acl.pattern_type:
            return False
        if self.resource_name is not None:
            if self.pattern_type in (ANY, acl.pattern_type):
                if self.resource_name != acl.resource_name:
                    return False
            elif acl.pattern_type == LITERAL:  # MATCH
                if self.resource_name != acl.resource_name and acl.resource_name != WILDCARD:
                    return False
            elif not self.resource_name.startswith(acl.resource_name):
                return False
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation != ANY and self.operation != acl.operation:
            return False
        return self.permission_type == ANY or self.permission_type == acl.permission_type


def validate_new_acl(acl: Acl) -> None:
    """Kafka's AclApis and AclControlManager.validateNewAcl checks, in their order."""
    if acl.resource_type == CLUSTER and acl.resource_name != CLUSTER_NAME:
        raise AclError(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
    if not acl.resource_name:
        raise AclError("Invalid empty resource name")
    if acl.resource_type in (UNKNOWN, ANY) or acl.resource_type not in RESOURCE_TYPES:
        raise AclError(f"Invalid resourceType {RESOURCE_TYPES.get(acl.resource_type, 'UNKNOWN')}")
    if acl.pattern_type not in (LITERAL, PREFIXED):
        raise AclError(f"Invalid patternType {PATTERN_TYPES.get(acl.pattern_type, 'UNKNOWN')}")
    if acl.operation in (UNKNOWN, ANY) or acl.operation not in OPERATIONS:
        raise AclError(f"Invalid operation {OPERATIONS.get(acl.operation, 'UNKNOWN')}")
    if acl.permission_type not in (DENY, ALLOW):
        raise AclError(f"Invalid permissionType {PERMISSIONS.get(acl.permission_type, 'UNKNOWN')}")
    if ":" not in acl.principal:
        raise AclError(f"Could not parse principal from `{acl.principal}` (no colon is present separating the "
                       "principal type from the principal name)")
    if not acl.host:
        raise AclError("Host pattern cannot be null or empty")
    if "/" in acl.host:
        try:
            ipaddress.ip_network(acl.host, strict=False)
        except ValueError as exc:
            raise AclError(f"Invalid CIDR notation '{acl.host}': {exc}") from None


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == WILDCARD or pattern == host:
        return True
    if "/" not in pattern:
        return False
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return False


def _resource_matches(acl: Acl, resource_type: int, name: str) -> bool:
    if acl.resource_type != resource_type:
        return False
    if acl.pattern_type == LITERAL:
        return acl.resource_name == name or acl.resource_name == WILDCARD
    return acl.pattern_type == PREFIXED and name.startswith(acl.resource_name)


def _result(acl: Acl, principals: tuple[str, str], host: str, operation: int) -> int | None:
    """StandardAuthorizerData.findResult: ALLOW, DENY, or None when the ACL does not apply."""
    if acl.principal not in principals or not _host_matches(acl.host, host):
        return None
    if acl.operation != ALL:
        if acl.permission_type == ALLOW:
            if operation == DESCRIBE:
                if acl.operation not in _IMPLIES_DESCRIBE:
                    return None
            elif operation == DESCRIBE_CONFIGS:
                if acl.operation not in _IMPLIES_DESCRIBE_CONFIGS:
                    return None
            elif operation != acl.operation:
                return None
        elif operation != acl.operation:
            return None
    return acl.permission_type


class Authorizer:
    """The ACLs of the metadata log and Kafka's StandardAuthorizer decision over them."""

    def __init__(self) -> None:
        self.enabled = False
        self.super_users: frozenset[str] = frozenset()
        self.allow_if_no_acl = False
        self.acls: dict[uuid.UUID, Acl] = {}
        # StandardAuthorizerData.loadingComplete: False between begin_initial_load (a node starting)
        # and complete_initial_load (its metadata caught up); meanwhile only super users pass.
        self.loading_complete = True

    def configure(self, config: ConfigLookup) -> None:
        name = (config.get("authorizer.class.name") or "").strip()
        self.enabled = bool(name)
        if name and name != STANDARD_AUTHORIZER:
            from kbroker.config import ConfigError

            raise ConfigError("authorizer.class.name", name, "", (
                f"Invalid value {name} for configuration authorizer.class.name: kbroker's authorizer is Kafka's "
                f"StandardAuthorizer; set {STANDARD_AUTHORIZER} (or leave it empty for none)"))
        self.super_users = frozenset(u.strip() for u in (config.get("super.users") or "").split(";") if u.strip())
        self.allow_if_no_acl = bool(config.get("allow.everyone.if.no.acl.found"))

    def begin_initial_load(self) -> None:
        """The node is loading its metadata: deny everyone but super users until
        :meth:`complete_initial_load` (Kafka's AuthorizerNotReadyException, answered as a denial)."""
        self.loading_complete = False

    def complete_initial_load(self) -> None:
        self.loading_complete = True

    def on_record(self, record: Any) -> None:
        name = type(record).__name__
        if name == "AccessControlEntryRecord":
            self.acls[record.id] = acl_of_record(record)
        elif name == "RemoveAccessControlEntryRecord":
            if self.acls.pop(record.id, None) is None:
                log.warning("RemoveAccessControlEntryRecord for unknown ACL %s", record.id)

    def authorize(self, principal: str, host: str, operation: int, resource_type: int, name: str,
                  log_denied: bool = True) -> bool:
        if not self.enabled or principal in self.super_users:
            return True
        if not self.loading_complete:
            if log_denied:
                log.info("authorizer not ready (metadata loading): %s denied operation %s", principal,
                         OPERATIONS.get(operation, operation))
            return False
        principals = (principal, WILDCARD_PRINCIPAL)
        has_resource_acls = allowed = False
        for acl in self.acls.values():
            if not _resource_matches(acl, resource_type, name):
                continue
            has_resource_acls = True
            result = _result(acl, principals, host, operation)
            if result == DENY:
                if log_denied:
                    self._denied(principal, host, operation, resource_type, name)
                return False
            if result == ALLOW:
                allowed = True
        if allowed:
            return True
        if not has_resource_acls and self.allow_if_no_acl:
            return True
        if log_denied:
            self._denied(principal, host, operation, resource_type, name)
        return False

    def authorize_by_resource_type(self, principal: str, host: str, operation: int, resource_type: int) -> bool:
        """Kafka's Authorizer.authorizeByResourceType (StandardAuthorizer keeps the default): whether
        some resource of the type could be allowed ``operation``: an ALLOW (literal or prefixed)
        whose name no DENY literal of the same name or DENY prefix of it covers; a DENY on the
        ``*`` wildcard refuses all."""
        if self.authorize(principal, host, operation, resource_type, "hardcode", log_denied=False):
            return True
        if not self.loading_complete:
            return False
        deny_literal: set[str] = set()
        deny_prefixed: set[str] = set()
        allows: list[tuple[int, str]] = []
        for acl in self.acls.values():
            if acl.resource_type != resource_type or not _host_matches(acl.host, host):
                continue
            if acl.principal not in (principal, WILDCARD_PRINCIPAL) or acl.operation not in (operation, ALL):
                continue
            if acl.permission_type == DENY:
                if acl.pattern_type == LITERAL:
                    if acl.resource_name == WILDCARD:
                        return False
                    deny_literal.add(acl.resource_name)
                elif acl.pattern_type == PREFIXED:
                    deny_prefixed.add(acl.resource_name)
            elif acl.permission_type == ALLOW:
                if acl.pattern_type == LITERAL and acl.resource_name == WILDCARD:
                    return True
                allows.append((acl.pattern_type, acl.resource_name))
        for pattern_type, name in allows:
            if pattern_type == LITERAL and name in deny_literal:
                continue
            if not any(name[:i] in deny_prefixed for i in range(1, len(name) + 1)):
                return True
        return False

    @staticmethod
    def _denied(principal: str, host: str, operation: int, resource_type: int, name: str) -> None:
        log.info("Principal = %s is Denied operation = %s from host = %s on resource = %s:LITERAL:%s",
                 principal, OPERATIONS.get(operation), host, RESOURCE_TYPES.get(resource_type, str(resource_type)).title()
                 if resource_type != TRANSACTIONAL_ID else "TransactionalId", name)

    def find(self, flt: AclFilter) -> list[tuple[uuid.UUID, Acl]]:
        return [(acl_id, acl) for acl_id, acl in self.acls.items() if flt.matches(acl)]


def acl_of_record(record: AccessControlEntryRecord) -> Acl:
    """The ACL of an AccessControlEntryRecord."""
    return Acl(record.resource_type, record.resource_name, record.pattern_type, record.principal, record.host,
               record.operation, record.permission_type)


def client_host(peer: str) -> str:
    """The client's address of a connection's ``host:port`` peer string."""
    host = peer.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


class _Peer(Protocol):
    @property
    def peer(self) -> str: ...  # host:port

    @property
    def principal(self) -> str: ...


class _AuthBroker(Protocol):
    @property
    def authorizer(self) -> Authorizer: ...


class AuthContext(Protocol):
    """What a check reads of a request's context: ``ctx.broker``'s ``authorizer`` (not enabled:
    allowed), ``ctx.connection``'s principal and peer; a context whose ``internal`` is true is the
    broker's own work, never refused."""

    @property
    def broker(self) -> _AuthBroker: ...
    @property
    def connection(self) -> _Peer: ...
    @property
    def internal(self) -> bool: ...


def authorized(ctx: AuthContext, operation: int, resource_type: int, name: str) -> bool:
    """Whether the request's principal may do ``operation`` on the resource (always, without an
    authorizer)."""
    authorizer = ctx.broker.authorizer
    if not authorizer.enabled or ctx.internal:
        return True
    conn = ctx.connection
    return authorizer.authorize(conn.principal, client_host(conn.peer), operation,
                                resource_type, name)


def authorized_operations(ctx: AuthContext, resource_type: int, name: str, operations: int) -> int:
    """The bit set of ``operations`` (bit n: operation code n) the principal may do on the resource,
    as Kafka fills the authorized-operations fields; all of them without an authorizer."""
    authorizer = ctx.broker.authorizer
    if not authorizer.enabled:
        return operations
    return sum(1 << op for op in range(32) if operations & (1 << op) and authorized(ctx, op, resource_type, name))


def idempotent_write_allowed(ctx: AuthContext) -> bool:
    """InitProducerId without a transactional id, as Kafka's KafkaApis: IDEMPOTENT_WRITE on the
    cluster, or WRITE on some topic (Authorizer.authorizeByResourceType)."""
    authorizer = ctx.broker.authorizer
    if not authorizer.enabled:
        return True
    if authorized(ctx, IDEMPOTENT_WRITE, CLUSTER, CLUSTER_NAME):
        return True
    conn = ctx.connection
    return authorizer.authorize_by_resource_type(conn.principal,
                                                 client_host(conn.peer), WRITE, TOPIC)


def config_refused(ctx: AuthContext, operation: int, resource_type: int, name: str) -> ErrorCode | None:
    """DescribeConfigs/AlterConfigs/IncrementalAlterConfigs, per resource as Kafka: a topic (2) needs
    ``operation`` on it (TOPIC_AUTHORIZATION_FAILED), a broker or broker logger on the cluster
    (CLUSTER_AUTHORIZATION_FAILED); None when allowed."""
    if resource_type == 2:
        return None if authorized(ctx, operation, TOPIC, name) else ErrorCode.TOPIC_AUTHORIZATION_FAILED
    return None if authorized(ctx, operation, CLUSTER, CLUSTER_NAME) else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
