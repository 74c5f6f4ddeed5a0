"""The controller's side of AlterClientQuotas (key 49), as Kafka's ControllerApis and
ClientQuotaControlManager: ALTER_CONFIGS on the cluster for the forwarded principal, each entry
checked as Kafka does, the valid ones written as ClientQuotaRecords in one metadata batch. The
broker's handler (and the rules in full) is kbroker/api/alter_client_quotas.py.
"""

from __future__ import annotations

import math
import socket
from typing import TYPE_CHECKING, Protocol

from kbroker.controller.operations.host import (
    ControllerHolder,
    OperationSubject,
    local_controller,
    operation_subject,
)
from kbroker.metadata.client import Requester
from kbroker.metadata.image import QuotaEntity, quota_entity
from kbroker.security.acls import ALTER_CONFIGS, CLUSTER, CLUSTER_NAME, authorized
from kbroker.security.quotas import CLIENT_ID, IP, IP_KEYS, USER, USER_CLIENT_KEYS
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.alter_client_quotas import AlterClientQuotasRequest, AlterClientQuotasResponse
from kbroker_protocol.messages.metadata_records import ClientQuotaRecord

if TYPE_CHECKING:
    from kbroker.security.acls import Authorizer


class ClientQuotasHost(ControllerHolder, Protocol):
    """AlterClientQuotas as it uses the node: its controller and the authorizer."""

    @property
    def authorizer(self) -> Authorizer: ...


EntryData = AlterClientQuotasResponse.EntryData
_LIMITS = {"SHORT": (2**15 - 1, "a SHORT"), "INT": (2**31 - 1, "an INT"), "LONG": (2**63 - 1, "a LONG")}


async def alter_client_quotas(broker: ClientQuotasHost, request: AlterClientQuotasRequest, version: int, requester: Requester | None = None) -> AlterClientQuotasResponse:
    """The controller's side, authorized for the requester's principal."""
    assert broker.controller is not None
    async with local_controller(broker).exclusive():
        return await _alter_client_quotas(broker, operation_subject(broker, requester), request)


def _java_entity_text(entity: dict[str, str | None]) -> str:
    # ClientQuotaEntity.toString over Java's HashMap (client-id hashes before user, user before ip)
    order = {CLIENT_ID: 0, USER: 1, IP: 2}
    inner = ", ".join(f"{k}={'null' if v is None else v}" for k, v in sorted(entity.items(), key=lambda i: order.get(i[0], 3)))
    return f"ClientQuotaEntity(entries={{{inner}}})"


def _valid_ip(ip: str | None) -> bool:
    if ip is None:
        return True
    try:
        socket.getaddrinfo(ip, None)
        return True
    except (OSError, UnicodeError):
        return False


def _check_entity(entity: dict[str, str | None]) -> tuple[str | None, dict[str, str]]:
    """Kafka's validateEntity and configKeysForEntityType: an error message, or None and the keys."""
    if not entity:
        return "Invalid empty client quota entity", {}
    for kind, name in entity.items():
        if kind not in (USER, CLIENT_ID, IP):
            return f"Unhandled client quota entity type: {kind}", {}
        if name is not None and name == "":
            return f"Empty {kind} not supported", {}
    if IP in entity:
        if USER in entity or CLIENT_ID in entity:
            return "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId", {}
        if not _valid_ip(entity[IP]):
            return f"{entity[IP]} is not a valid IP or resolvable host.", {}
        return None, IP_KEYS
    return None, USER_CLIENT_KEYS


def _check_value(keys: dict[str, str], key: str, value: float) -> str | None:
    """Kafka's validateQuotaKeyValue."""
    kind = keys.get(key)
    if kind is None:
        return f"Invalid configuration key {key}"
    if not value > 0.0:
        return f"Quota {key} must be greater than 0"
    if kind == "DOUBLE":
        return None
    limit, name = _LIMITS[kind]
    if value > limit:
        return f"Proposed value for {key} is too large for {name}."
    if abs(math.fmod(value, 1.0)) > 1e-6:
        return f"{key} cannot be a fractional value."
    return None


async def _alter_client_quotas(broker: ClientQuotasHost, ctx: OperationSubject[ClientQuotasHost], request: AlterClientQuotasRequest) -> AlterClientQuotasResponse:
    if not authorized(ctx, ALTER_CONFIGS, CLUSTER, CLUSTER_NAME):
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return AlterClientQuotasResponse(throttle_time_ms=0, entries=[
            EntryData(error_code=code, error_message=default_message(code),
                      entity=[EntryData.EntityData(entity_type=e.entity_type, entity_name=e.entity_name)
                              for e in entry.entity])
            for entry in request.entries])
    current_quotas = local_controller(broker).image.client_quotas
    results: dict[QuotaEntity, tuple[int, str | None]] = {}  # entity -> error, in request order
    records: list[ClientQuotaRecord] = []
    for entry in request.entries:
        entity: dict[str, str | None] = {}
        for e in entry.entity:  # a Java HashMap: a repeated type keeps its last name
            entity.pop(e.entity_type, None)
            entity[e.entity_type] = e.entity_name
        key = quota_entity(entity.items())
        alterations: dict[str, float | None] = {}
        for op in entry.ops:
            if op.key in alterations:
                results[key] = (ErrorCode.INVALID_REQUEST, f"Duplicate quota key {op.key} not updating quota for "
                                f"this entity {_java_entity_text(entity)}")
            else:
                alterations[op.key] = None if op.remove else op.value
        if key in results:
            results[key] = (ErrorCode.INVALID_REQUEST, f"Ignoring duplicate entity {_java_entity_text(entity)}")
            continue
        problem, keys = _check_entity(entity)
        if problem is not None:
            results[key] = (ErrorCode.INVALID_REQUEST, problem)
            continue
        current = current_quotas.get(key, {})
        new_records = []
        for name, value in alterations.items():
            if value is None:
                if name in current:
                    new_records.append(ClientQuotaRecord(entity=_record_entity(key), key=name, remove=True))
                continue
            problem = _check_value(keys, name, value)
            if problem is not None:
                break
            if current.get(name) != value:
                new_records.append(ClientQuotaRecord(entity=_record_entity(key), key=name, value=value))
        if problem is not None:
            results[key] = (ErrorCode.INVALID_REQUEST, problem)
            continue
        records += new_records
        results[key] = (ErrorCode.NONE, None)
    if records and not request.validate_only:
        await local_controller(broker).write(records)
    return AlterClientQuotasResponse(throttle_time_ms=0, entries=[
        EntryData(error_code=code, error_message=message,
                  entity=[EntryData.EntityData(entity_type=kind, entity_name=name) for kind, name in key])
        for key, (code, message) in results.items()])


def _record_entity(key: QuotaEntity) -> list[ClientQuotaRecord.EntityData]:
    return [ClientQuotaRecord.EntityData(entity_type=kind, entity_name=name) for kind, name in key]
