"""The composition root's check that the broker provides what every API handler uses.

Each handler is typed on the services it uses (``RequestContext[S]`` on a broker listener,
``HandlerContext[S]`` on the controller listener, ``S`` a small Protocol of its module or of
:mod:`kbroker.api.services`); the registry's tables erase that type (``kbroker.api.registry.Handler``)
and the server gives every handler a context on the whole broker. The tables below list every
handler as one taking a context on :class:`~kbroker.broker.Broker`: mypy accepts an entry only when
the broker provides all the services its handler declares. tests/unit/test_handler_services.py
checks that they list every handler the registry holds, and that a broker has, at run time, every
member of every handler's services.

Nothing imports this module at run time but that test: the broker loads its handler modules on
their API's first request (``kbroker.api.install_handlers``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Never

from kbroker.api import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    alter_client_quotas,
    alter_configs,
    alter_partition,
    alter_partition_reassignments,
    alter_replica_log_dirs,
    alter_user_scram_credentials,
    api_versions,
    assign_replicas_to_dirs,
    broker_heartbeat,
    broker_registration,
    consumer_group_describe,
    consumer_group_heartbeat,
    controller_registration,
    create_acls,
    create_partitions,
    create_topics,
    delegation_tokens,
    delete_acls,
    delete_groups,
    delete_records,
    delete_topics,
    describe_acls,
    describe_client_quotas,
    describe_cluster,
    describe_configs,
    describe_groups,
    describe_log_dirs,
    describe_producers,
    describe_topic_partitions,
    describe_transactions,
    describe_user_scram_credentials,
    elect_leaders,
    end_txn,
    envelope,
    fetch,
    find_coordinator,
    heartbeat,
    init_producer_id,
    join_group,
    leave_group,
    list_config_resources,
    list_groups,
    list_offsets,
    list_partition_reassignments,
    list_transactions,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    quorum_forwarding,
    raft_voters,
    sasl_authenticate,
    sasl_handshake,
    share_acknowledge,
    share_fetch,
    share_group_describe,
    share_group_heartbeat,
    share_group_offsets,
    share_group_state,
    streams_group_describe,
    streams_group_heartbeat,
    streams_group_topology_description_update,
    sync_group,
    txn_offset_commit,
    unregister_broker,
    update_features,
    write_txn_markers,
)
from kbroker.api.context import RequestContext
from kbroker.api.controller_listener import ControllerRequestContext
from kbroker.broker import Broker

BrokerHandler = Callable[[RequestContext[Broker], Never], object]
"""A broker-listener handler given a context on the broker (what the server does)."""

ControllerHandler = Callable[[ControllerRequestContext[Broker], Never], object]
"""A controller-listener handler given a context on the node (``install_controller_handlers``)."""

BROKER_LISTENER_HANDLERS: tuple[BrokerHandler, ...] = (
    add_offsets_to_txn.handle_add_offsets_to_txn,
    add_partitions_to_txn.handle_add_partitions_to_txn,
    alter_client_quotas.handle_alter_client_quotas,
    alter_configs.handle_alter_configs,
    alter_configs.handle_incremental_alter_configs,
    alter_partition_reassignments.handle_alter_partition_reassignments,
    alter_replica_log_dirs.handle_alter_replica_log_dirs,
    alter_user_scram_credentials.handle_alter_user_scram_credentials,
    api_versions.handle_api_versions,
    consumer_group_describe.handle_consumer_group_describe,
    consumer_group_heartbeat.handle_consumer_group_heartbeat,
    controller_registration.handle_unregister_controller,
    create_acls.handle_create_acls,
    create_partitions.handle_create_partitions,
    create_topics.handle_create_topics,
    delegation_tokens.handle_create_delegation_token,
    delegation_tokens.handle_describe_delegation_token,
    delegation_tokens.handle_expire_delegation_token,
    delegation_tokens.handle_renew_delegation_token,
    delete_acls.handle_delete_acls,
    delete_groups.handle_delete_groups,
    delete_records.handle_delete_records,
    delete_topics.handle_delete_topics,
    describe_acls.handle_describe_acls,
    describe_client_quotas.handle_describe_client_quotas,
    describe_cluster.handle_describe_cluster,
    describe_configs.handle_describe_configs,
    describe_groups.handle_describe_groups,
    describe_log_dirs.handle_describe_log_dirs,
    describe_producers.handle_describe_producers,
    describe_topic_partitions.handle_describe_topic_partitions,
    describe_transactions.handle_describe_transactions,
    describe_user_scram_credentials.handle_describe_user_scram_credentials,
    elect_leaders.handle_elect_leaders,
    end_txn.handle_end_txn,
    fetch.handle_fetch,
    find_coordinator.handle_find_coordinator,
    heartbeat.handle_heartbeat,
    init_producer_id.handle_init_producer_id,
    join_group.handle_join_group,
    leave_group.handle_leave_group,
    list_config_resources.handle_list_config_resources,
    list_groups.handle_list_groups,
    list_offsets.handle_list_offsets,
    list_partition_reassignments.handle_list_partition_reassignments,
    list_transactions.handle_list_transactions,
    metadata.handle_metadata,
    offset_commit.handle_offset_commit,
    offset_delete.handle_offset_delete,
    offset_fetch.handle_offset_fetch,
    offset_for_leader_epoch.handle_offset_for_leader_epoch,
    produce.handle_produce,
    quorum_forwarding.handle_describe_quorum,
    quorum_forwarding.handle_unregister_broker,
    raft_voters.handle_add_raft_voter,
    raft_voters.handle_remove_raft_voter,
    sasl_authenticate.handle_sasl_authenticate,
    sasl_handshake.handle_sasl_handshake,
    share_acknowledge.handle_share_acknowledge,
    share_fetch.handle_share_fetch,
    share_group_describe.handle_share_group_describe,
    share_group_heartbeat.handle_share_group_heartbeat,
    share_group_offsets.handle_alter_share_group_offsets,
    share_group_offsets.handle_delete_share_group_offsets,
    share_group_offsets.handle_describe_share_group_offsets,
    share_group_state.handle_delete_share_group_state,
    share_group_state.handle_initialize_share_group_state,
    share_group_state.handle_read_share_group_state,
    share_group_state.handle_read_share_group_state_summary,
    share_group_state.handle_write_share_group_state,
    streams_group_describe.handle_streams_group_describe,
    streams_group_heartbeat.handle_streams_group_heartbeat,
    streams_group_topology_description_update.handle_streams_group_topology_description_update,
    sync_group.handle_sync_group,
    txn_offset_commit.handle_txn_offset_commit,
    update_features.handle_update_features,
    write_txn_markers.handle_write_txn_markers,
)

CONTROLLER_LISTENER_HANDLERS: tuple[ControllerHandler, ...] = (
    alter_partition.handle_alter_partition,
    alter_partition_reassignments.handle_alter_partition_reassignments_on_controller,
    assign_replicas_to_dirs.handle_assign_replicas_to_dirs,
    broker_heartbeat.handle_broker_heartbeat,
    broker_registration.handle_broker_registration,
    list_partition_reassignments.handle_list_partition_reassignments_on_controller,
    unregister_broker.handle_unregister_broker,
)

ENVELOPE_HANDLERS: tuple[BrokerHandler, ...] = (
    envelope.handle_allocate_producer_ids,
    envelope.handle_envelope,
)
"""Envelope's :data:`~kbroker.api.envelope.CONTROLLER_APIS`, for a server with request contexts."""
