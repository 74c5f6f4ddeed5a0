"""AlterClientQuotas and the controller mutation quota across the controller seam, in-process with
two nodes (the fixtures of tests/integration/controller_forwarding_helpers.py): a client's
AlterClientQuotas sent to node B is applied by node A (the controller) in its metadata image, and a
CreateTopics sent to B over its client's controller_mutation_rate is refused by A with
THROTTLING_QUOTA_EXCEEDED, the throttle time coming back through B in the response."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_client_quotas import AlterClientQuotasRequest
from kbroker_protocol.messages.create_topics import CreateTopicsRequest
from tests.integration.controller_forwarding_helpers import address, forward_to, send

E = AlterClientQuotasRequest.EntryData


async def test_alter_client_quotas_and_mutation_quota_through_the_controller(nodes):
    a, b = nodes
    forward_to(b, lambda: 1, {1: address(a)})
    altered = await send(b, 49, AlterClientQuotasRequest(validate_only=False, entries=[
        E(entity=[E.EntityData(entity_type="client-id", entity_name="admin")],
          ops=[E.OpData(key="controller_mutation_rate", value=1.0, remove=False)]),
        E(entity=[E.EntityData(entity_type="client-id", entity_name="x")],
          ops=[E.OpData(key="bogus", value=1.0, remove=False)])]))
    assert [(e.error_code, e.error_message) for e in altered.entries] == [
        (ErrorCode.NONE, None), (ErrorCode.INVALID_REQUEST, "Invalid configuration key bogus")]
    assert a.broker.image.client_quotas == {(("client-id", "admin"),): {"controller_mutation_rate": 1.0}}
    assert b.broker.image.client_quotas == {}  # B learns it from the metadata log (not here)

    T = CreateTopicsRequest.CreatableTopic
    created = await send(b, 19, CreateTopicsRequest(timeout_ms=5000, validate_only=False, topics=[
        T(name="big", num_partitions=20, replication_factor=-1, assignments=[], configs=[]),
        T(name="more", num_partitions=1, replication_factor=-1, assignments=[], configs=[])]))
    codes = {t.name: t.error_code for t in created.topics}
    assert codes == {"big": ErrorCode.NONE, "more": ErrorCode.THROTTLING_QUOTA_EXCEEDED}
    assert created.throttle_time_ms > 0  # A's throttle, carried back through B
