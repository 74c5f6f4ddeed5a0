"""The console's ACLs and SCRAM users: DescribeAcls, CreateAcls, DeleteAcls,
DescribeUserScramCredentials and AlterUserScramCredentials requests (see :mod:`kbroker.console.ops`),
so the broker validates and authorizes them as it does for kafka-acls.sh and kafka-configs.sh
(ALTER on the cluster to change ACLs or users, DESCRIBE to list them).

A SCRAM user is added as kafka-configs.sh adds one: the salted password is computed here
(:func:`kbroker.security.scram.salted_password`, PBKDF2 over a random salt) and only it is sent.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from kbroker.console.client import KafkaClient, check
from kbroker.console.ops import Invalid, NotFound, want_int
from kbroker.security import acls as A
from kbroker.security.scram import MECHANISMS_BY_NAME, MECHANISMS_BY_TYPE, salted_password
from kbroker_protocol import messages

if TYPE_CHECKING:
    from kbroker.json_types import JsonObject
    from kbroker.security.scram import ScramMechanism

ACL_FIELDS = ("resource_type", "resource_name", "pattern_type", "principal", "host", "operation", "permission")
DEFAULT_ITERATIONS = 4096


def _code(names: dict[int, str], field: str, value: object, allowed: tuple[str, ...] | None = None) -> int:
    """An ACL enum from its Kafka name (TOPIC, LITERAL, READ, ALLOW...)."""
    by_name = {name: code for code, name in names.items() if name not in ("UNKNOWN", "ANY", "MATCH")}
    if not isinstance(value, str) or value.upper() not in by_name or (allowed and value.upper() not in allowed):
        choices = allowed or tuple(sorted(by_name, key=by_name.__getitem__))
        raise Invalid(field, f"{field} must be one of {', '.join(choices)}")
    return by_name[value.upper()]


def _text(data: JsonObject, field: str, default: str | None = None) -> str:
    value = data.get(field, default)
    if not isinstance(value, str) or not value:
        raise Invalid(field, f"{field} is required")
    return value


def _binding(data: JsonObject) -> dict[str, Any]:
    """One ACL binding from the page, as the request fields (names checked here, the rest, such
    as the principal's form or the host, by the broker as for any CreateAcls)."""
    return {
        "resource_type": _code(A.RESOURCE_TYPES, "resource_type", data.get("resource_type")),
        "resource_name": _text(data, "resource_name"),
        "resource_pattern_type": _code(A.PATTERN_TYPES, "pattern_type", data.get("pattern_type", "LITERAL"),
                                       ("LITERAL", "PREFIXED")),
        "principal": _text(data, "principal"),
        "host": _text(data, "host", "*"),
        "operation": _code(A.OPERATIONS, "operation", data.get("operation")),
        "permission_type": _code(A.PERMISSIONS, "permission", data.get("permission", "ALLOW")),
    }


def _row(resource_type: int, name: str, pattern: int, principal: str, host: str, operation: int,
         permission: int) -> dict[str, str]:
    return {"resource_type": A.RESOURCE_TYPES.get(resource_type, str(resource_type)), "resource_name": name,
            "pattern_type": A.PATTERN_TYPES.get(pattern, str(pattern)), "principal": principal, "host": host,
            "operation": A.OPERATIONS.get(operation, str(operation)),
            "permission": A.PERMISSIONS.get(permission, str(permission))}


async def list_acls(client: KafkaClient) -> dict[str, object]:
    resp = await client.send(29, 3, resource_type_filter=A.ANY, resource_name_filter=None,
                             pattern_type_filter=A.ANY, principal_filter=None, host_filter=None,
                             operation=A.ANY, permission_type=A.ANY)
    check(resp.error_code, resp.error_message, "DescribeAcls")
    rows = [_row(r.resource_type, r.resource_name, r.pattern_type, a.principal, a.host, a.operation,
                 a.permission_type) for r in resp.resources for a in r.acls]
    rows.sort(key=lambda r: tuple(r[f] for f in ACL_FIELDS))
    return {"acls": rows}


async def create_acl(client: KafkaClient, data: JsonObject) -> dict[str, object]:
    binding = _binding(data)
    resp = await client.send(30, 3, creations=[messages.CreateAclsRequest.AclCreation(**binding)])
    r = resp.results[0]
    check(r.error_code, r.error_message, "CreateAcls")
    return {"created": _row(*binding.values())}


async def delete_acl(client: KafkaClient, data: JsonObject) -> dict[str, object]:
    """Deletes exactly one binding (a filter with every field given)."""
    b = _binding(data)
    resp = await client.send(31, 3, filters=[messages.DeleteAclsRequest.DeleteAclsFilter(
        resource_type_filter=b["resource_type"], resource_name_filter=b["resource_name"],
        pattern_type_filter=b["resource_pattern_type"], principal_filter=b["principal"], host_filter=b["host"],
        operation=b["operation"], permission_type=b["permission_type"])])
    r = resp.filter_results[0]
    check(r.error_code, r.error_message, "DeleteAcls")
    if not r.matching_acls:
        raise NotFound("no such ACL")
    for m in r.matching_acls:
        check(m.error_code, m.error_message, "DeleteAcls")
    return {"deleted": [_row(m.resource_type, m.resource_name, m.pattern_type, m.principal, m.host, m.operation,
                             m.permission_type) for m in r.matching_acls]}


# -- SCRAM users -------------------------------------------------------------------------------


async def list_users(client: KafkaClient) -> dict[str, object]:
    resp = await client.send(50, 0, users=None)
    check(resp.error_code, resp.error_message, "DescribeUserScramCredentials")
    users = []
    for r in sorted(resp.results, key=lambda r: r.user):
        check(r.error_code, r.error_message, f"DescribeUserScramCredentials {r.user}")
        users.append({"user": r.user, "mechanisms": [
            {"mechanism": MECHANISMS_BY_TYPE[c.mechanism].name if c.mechanism in MECHANISMS_BY_TYPE
             else str(c.mechanism), "iterations": c.iterations} for c in r.credential_infos]})
    return {"users": users}


def _mechanism(data: JsonObject) -> ScramMechanism:
    name = data.get("mechanism", "SCRAM-SHA-256")
    mechanism = MECHANISMS_BY_NAME.get(name) if isinstance(name, str) else None
    if mechanism is None:
        raise Invalid("mechanism", f"mechanism must be one of {', '.join(MECHANISMS_BY_NAME)}")
    return mechanism


async def _alter(client: KafkaClient, user: str, **changes: Any) -> None:
    resp = await client.send(51, 0, **{"deletions": [], "upsertions": [], **changes})
    r = resp.results[0]
    check(r.error_code, r.error_message, f"AlterUserScramCredentials {user}")


async def add_user(client: KafkaClient, data: JsonObject) -> dict[str, object]:
    user = _text(data, "user")
    password = _text(data, "password")
    mechanism = _mechanism(data)
    iterations = want_int(data, "iterations", default=DEFAULT_ITERATIONS, low=mechanism.min_iterations,
                          high=mechanism.max_iterations)
    salt = secrets.token_bytes(32)
    Req = messages.AlterUserScramCredentialsRequest
    await _alter(client, user, upsertions=[Req.ScramCredentialUpsertion(
        name=user, mechanism=mechanism.type, iterations=iterations, salt=salt,
        salted_password=salted_password(mechanism, password, salt, iterations))])
    return {"user": user, "mechanism": mechanism.name, "iterations": iterations}


async def delete_user(client: KafkaClient, data: JsonObject) -> dict[str, object]:
    user = _text(data, "user")
    mechanism = _mechanism(data)
    Req = messages.AlterUserScramCredentialsRequest
    await _alter(client, user, deletions=[Req.ScramCredentialDeletion(name=user, mechanism=mechanism.type)])
    return {"user": user, "deleted": mechanism.name}
