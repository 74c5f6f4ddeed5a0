"""The table of the controller's operations: :data:`OPERATIONS` names the controller's side of every
API in :data:`~kbroker.metadata.client.FORWARDED_APIS`, written out here, typed on
:class:`AllOperationsHost`. Importing this module is what makes every operation reachable, so no
Envelope or local call can find the table unfilled; :class:`~kbroker.controller.operations.local.LocalControllerClient`
imports it when it runs its first operation (a single node that runs none never loads the
operation modules and their messages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from kbroker.controller.operations import (
    alter_client_quotas,
    alter_configs,
    alter_user_scram_credentials,
    create_acls,
    create_partitions,
    create_topics,
    delegation_tokens,
    delete_acls,
    delete_topics,
    elect_leaders,
    quorum,
    raft_voters,
    reassignments,
    update_features,
)
from kbroker.metadata import client as c
from kbroker.metadata.client import Requester


class AllOperationsHost(
    create_topics.CreateTopicsHost,
    create_partitions.CreatePartitionsHost,
    delete_topics.DeleteTopicsHost,
    alter_configs.ConfigsHost,
    elect_leaders.ElectionHost,
    reassignments.ReassignmentHost,
    reassignments.ReassignmentListing,
    update_features.FeaturesHost,
    create_acls.AclsHost,
    delete_acls.AclsHost,
    alter_user_scram_credentials.ScramHost,
    alter_client_quotas.ClientQuotasHost,
    delegation_tokens.TokensHost,
    quorum.DescribeQuorumHost,
    quorum.UnregisterBrokerHost,
    quorum.UnregisterControllerHost,
    raft_voters.VotersHost,
    Protocol,
):
    """The node as any operation of :data:`OPERATIONS` may use it: the intersection of the
    operations' own Protocols (one per module, each what its operations use), and nothing else.
    What runs an operation it does not choose holds this (:class:`LocalControllerClient`, and the
    Envelope handler, ``kbroker.api.envelope``); the node (``kbroker.broker.Broker``) is checked
    against it where it is given to one. An operation whose Protocol asks for a member none of
    these bases declares does not type-check in :data:`OPERATIONS` (tests/unit/test_operation_hosts.py
    also checks that these bases are exactly the table's Protocols)."""


Operation = Callable[[AllOperationsHost, Any, int, "Requester | None"], Awaitable[Any]]
"""``(host, request, api_version, requester) -> response body``: one forwarded API run on the
controller; ``requester`` (the Envelope's principal and client address, or the local request's)
is what the operation authorizes, as Kafka's ControllerApis does with the forwarded principal.
Each operation is typed on the small Protocol of what it uses of the node (its module's, e.g.
``create_topics.CreateTopicsHost``); typing the table on :class:`AllOperationsHost` makes mypy
refuse an operation whose Protocol asks for more than that intersection declares."""

OPERATIONS: dict[int, Operation] = {
    c.CREATE_TOPICS: create_topics.create_topics,
    c.DELETE_TOPICS: delete_topics.delete_topics,
    c.CREATE_PARTITIONS: create_partitions.create_partitions,
    c.ALTER_CONFIGS: alter_configs.alter_configs,
    c.INCREMENTAL_ALTER_CONFIGS: alter_configs.incremental_alter_configs,
    c.ELECT_LEADERS: elect_leaders.elect_leaders,
    c.UPDATE_FEATURES: update_features.update_features,
    c.CREATE_ACLS: create_acls.create_acls,
    c.DELETE_ACLS: delete_acls.delete_acls,
    c.ALTER_USER_SCRAM_CREDENTIALS: alter_user_scram_credentials.alter_user_scram_credentials,
    c.ALTER_PARTITION_REASSIGNMENTS: reassignments.alter_partition_reassignments_operation,
    c.LIST_PARTITION_REASSIGNMENTS: reassignments.list_partition_reassignments_operation,
    c.ALTER_CLIENT_QUOTAS: alter_client_quotas.alter_client_quotas,
    c.CREATE_DELEGATION_TOKEN: delegation_tokens.create_delegation_token,
    c.RENEW_DELEGATION_TOKEN: delegation_tokens.renew_delegation_token,
    c.EXPIRE_DELEGATION_TOKEN: delegation_tokens.expire_delegation_token,
    c.DESCRIBE_QUORUM: quorum.describe_quorum_operation,
    c.UNREGISTER_BROKER: quorum.unregister_broker_operation,
    c.ADD_RAFT_VOTER: raft_voters.add_raft_voter_operation,
    c.REMOVE_RAFT_VOTER: raft_voters.remove_raft_voter_operation,
    c.UNREGISTER_CONTROLLER: quorum.unregister_controller_operation,
}
"""The controller's side of each forwarded API, by API key (exactly :data:`~kbroker.metadata.client.FORWARDED_APIS`)."""
