"""CreateAcls, DeleteAcls and AlterUserScramCredentials decide on the controller's image (Kafka's
AclControlManager / ScramControlManager state), not on the broker's committed stores: here the
controller's image has records the broker's does not (a write cancelled while waiting for its
commit, so appended but not committed)."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from kbroker.controller.operations import alter_user_scram_credentials as scram_op
from kbroker.controller.operations import create_acls as create_op
from kbroker.controller.operations import delete_acls as delete_op
from kbroker.metadata import metadata_records as mr
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.alter_user_scram_credentials import AlterUserScramCredentialsRequest
from kbroker_protocol.messages.create_acls import CreateAclsRequest
from kbroker_protocol.messages.delete_acls import DeleteAclsRequest
from tests.unit.metadata_image_helpers import HeldRaft, node

T = TypeVar("T")
TOPIC, LITERAL, READ, ALLOW, ANY = 2, 3, 3, 3, 1
ACL = mr.AccessControlEntryRecord(id=uuid.UUID(int=3), resource_type=TOPIC, resource_name="t", pattern_type=LITERAL,
                                  principal="User:a", host="*", operation=READ, permission_type=ALLOW)
SCRAM = mr.UserScramCredentialRecord(name="alice", mechanism=1, salt=b"s", stored_key=b"k" * 32,
                                     server_key=b"v" * 32, iterations=4096)


async def _uncommitted(controller: Any, raft: HeldRaft, records: list[Any]) -> None:
    async def write() -> None:
        async with controller.exclusive():
            await controller.write(records)
    task = asyncio.ensure_future(write())
    await raft.wait_appended()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _committing(raft: HeldRaft, operation: Awaitable[T]) -> T:
    """Run an operation, committing what it writes."""
    answer = asyncio.ensure_future(operation)
    appended = asyncio.ensure_future(raft.wait_appended())
    await asyncio.wait([answer, appended], return_when=asyncio.FIRST_COMPLETED)
    if not answer.done():
        raft.commit_through(raft.log.end_offset)
    else:
        appended.cancel()
    return await answer


def _setup(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, HeldRaft, Any]:
    controller, loader, raft = node()
    for module in (create_op, delete_op, scram_op):
        monkeypatch.setattr(module, "authorized", lambda *a: True)
    # the broker's committed stores are empty: the records below are the controller's only
    broker = SimpleNamespace(controller=controller, image=loader.image,
                             authorizer=SimpleNamespace(enabled=True, acls={}, find=lambda flt: []),
                             scram_credentials=SimpleNamespace(credentials={}))
    return controller, loader, raft, SimpleNamespace(broker=broker)


async def test_create_acls_sees_an_uncommitted_acl(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, loader, raft, ctx = _setup(monkeypatch)
    await _uncommitted(controller, raft, [ACL])
    end = raft.log.end_offset
    req = CreateAclsRequest(creations=[CreateAclsRequest.AclCreation(
        resource_type=TOPIC, resource_name="t", resource_pattern_type=LITERAL, principal="User:a", host="*",
        operation=READ, permission_type=ALLOW)])
    response = await _committing(raft, create_op._create_acls(ctx, req))
    assert [r.error_code for r in response.results] == [ErrorCode.NONE]
    assert raft.log.end_offset == end  # already there: no second record for the same ACL
    assert list(controller.image.acls) == [ACL.id]


async def test_delete_acls_matches_an_uncommitted_acl(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, loader, raft, ctx = _setup(monkeypatch)
    await _uncommitted(controller, raft, [ACL])
    req = DeleteAclsRequest(filters=[DeleteAclsRequest.DeleteAclsFilter(
        resource_type_filter=ANY, resource_name_filter=None, pattern_type_filter=ANY, principal_filter=None,
        host_filter=None, operation=ANY, permission_type=ANY)])
    response = await _committing(raft, delete_op._delete_acls(ctx, req))
    [result] = response.filter_results
    assert result.error_code == ErrorCode.NONE
    assert [(m.resource_name, m.principal) for m in result.matching_acls] == [("t", "User:a")]
    assert controller.image.acls == {} and loader.image.acls == {}


async def test_scram_deletion_finds_an_uncommitted_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, loader, raft, ctx = _setup(monkeypatch)
    await _uncommitted(controller, raft, [SCRAM])
    req = AlterUserScramCredentialsRequest(
        deletions=[AlterUserScramCredentialsRequest.ScramCredentialDeletion(name="alice", mechanism=1)],
        upsertions=[])
    response = await _committing(raft, scram_op._alter_user_scram_credentials(ctx, req))
    assert [(r.user, r.error_code) for r in response.results] == [("alice", ErrorCode.NONE)]
    assert controller.image.scram_credentials == {} and loader.image.scram_credentials == {}
