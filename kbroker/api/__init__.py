"""One module per Kafka API. Each registers its handler and version range in the registry.

A module that defines a handler registers it with :func:`kbroker.api.registry.api` when imported.
:func:`load_handlers` imports every module of this package. :func:`install_handlers` (what a
broker calls) imports none of them: it fills the registry from :data:`HANDLER_TABLE` (each API's
module, version range and listeners, as the module registers them) with handlers that import
their module on the API's first request, so a start does not load the 60-odd handler modules and
the message classes they use (~20 ms of CPU) before answering its first Metadata request.
ApiVersions, the version checks and the listener tables are the same either way.
tests/unit/test_api_table.py checks the table against what the modules register (and prints the
table to paste when a module is added or changes its versions). A module of this package in
neither the table nor :data:`SUPPORT_MODULES` (a handler added since) is imported at install.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False
_installed = False

B = ("broker",)
C = ("controller",)

# (api key, module of this package, min version, max version, listeners): one row a registration, as
# the module registers it (a key served on both kinds of listener by two functions has two rows).
HANDLER_TABLE: tuple[tuple[int, str, int, int, tuple[str, ...]], ...] = (
    (0, "produce", 3, 13, B),
    (1, "fetch", 4, 18, B),
    (2, "list_offsets", 1, 11, B),
    (3, "metadata", 0, 13, B),
    (8, "offset_commit", 2, 10, B),
    (9, "offset_fetch", 1, 10, B),
    (10, "find_coordinator", 0, 6, B),
    (11, "join_group", 0, 9, B),
    (12, "heartbeat", 0, 4, B),
    (13, "leave_group", 0, 5, B),
    (14, "sync_group", 0, 5, B),
    (15, "describe_groups", 0, 6, B),
    (16, "list_groups", 0, 5, B),
    (17, "sasl_handshake", 0, 1, B),
    (18, "api_versions", 0, 5, B),
    (19, "create_topics", 2, 7, B),
    (20, "delete_topics", 1, 6, B),
    (21, "delete_records", 0, 2, B),
    (22, "init_producer_id", 0, 6, B),
    (23, "offset_for_leader_epoch", 2, 4, B),
    (24, "add_partitions_to_txn", 0, 5, B),
    (25, "add_offsets_to_txn", 0, 4, B),
    (26, "end_txn", 0, 5, B),
    (27, "write_txn_markers", 1, 2, B),
    (28, "txn_offset_commit", 0, 6, B),
    (29, "describe_acls", 1, 3, B),
    (30, "create_acls", 1, 3, B),
    (31, "delete_acls", 1, 3, B),
    (32, "describe_configs", 1, 4, B),
    (33, "alter_configs", 0, 2, B),
    (34, "alter_replica_log_dirs", 1, 2, B),
    (35, "describe_log_dirs", 1, 5, B),
    (36, "sasl_authenticate", 0, 2, B),
    (37, "create_partitions", 0, 3, B),
    (38, "delegation_tokens", 1, 3, B),
    (39, "delegation_tokens", 1, 2, B),
    (40, "delegation_tokens", 1, 2, B),
    (41, "delegation_tokens", 1, 3, B),
    (42, "delete_groups", 0, 3, B),
    (43, "elect_leaders", 0, 2, B),
    (44, "alter_configs", 0, 1, B),
    (45, "alter_partition_reassignments", 0, 1, B),
    (45, "alter_partition_reassignments", 0, 1, C),
    (46, "list_partition_reassignments", 0, 0, B),
    (46, "list_partition_reassignments", 0, 0, C),
    (47, "offset_delete", 0, 0, B),
    (48, "describe_client_quotas", 0, 1, B),
    (49, "alter_client_quotas", 0, 1, B),
    (50, "describe_user_scram_credentials", 0, 0, B),
    (51, "alter_user_scram_credentials", 0, 0, B),
    (55, "quorum_forwarding", 0, 2, B),
    (56, "alter_partition", 2, 3, C),
    (57, "update_features", 0, 2, B),
    (60, "describe_cluster", 0, 2, B),
    (61, "describe_producers", 0, 0, B),
    (62, "broker_registration", 0, 4, C),
    (63, "broker_heartbeat", 0, 2, C),
    (64, "quorum_forwarding", 0, 0, B),
    (64, "unregister_broker", 0, 0, C),
    (65, "describe_transactions", 0, 0, B),
    (66, "list_transactions", 0, 2, B),
    (68, "consumer_group_heartbeat", 0, 1, B),
    (69, "consumer_group_describe", 0, 1, B),
    (73, "assign_replicas_to_dirs", 0, 0, C),
    (74, "list_config_resources", 0, 1, B),
    (75, "describe_topic_partitions", 0, 0, B),
    (76, "share_group_heartbeat", 1, 1, B),
    (77, "share_group_describe", 1, 1, B),
    (78, "share_fetch", 1, 2, B),
    (79, "share_acknowledge", 1, 2, B),
    (80, "raft_voters", 0, 1, B),
    (81, "raft_voters", 0, 0, B),
    (83, "share_group_state", 0, 0, B),
    (84, "share_group_state", 0, 0, B),
    (85, "share_group_state", 0, 1, B),
    (86, "share_group_state", 0, 0, B),
    (87, "share_group_state", 0, 1, B),
    (88, "streams_group_heartbeat", 0, 1, B),
    (89, "streams_group_describe", 0, 1, B),
    (90, "share_group_offsets", 0, 1, B),
    (91, "share_group_offsets", 0, 0, B),
    (92, "share_group_offsets", 0, 0, B),
    (93, "streams_group_topology_description_update", 0, 0, B),
    (94, "controller_registration", 0, 0, B),
)

# Modules of this package that register no handler (the handlers import what they use).
SUPPORT_MODULES = frozenset({
    "active_controller", "authorization", "auto_topic_creation", "context", "controller_apis", "controller_listener",
    "envelope", "error_response", "fetch_answer", "group_describe", "leader_hint", "produce_answer", "registry",
    "services", "share_common",
})


# APIs served only on the controller listener through the RaftDriver's own handler table (so not in
# HANDLER_TABLE) whose error response builder lives in their module rather than in the core: the module.
CONTROLLER_ONLY_REFUSALS: dict[int, str] = {70: "controller_registration"}


def refusal_modules(api_key: int) -> list[str]:
    """The modules that may register ``api_key``'s error response builder: the API's own module
    (each module registers the builder of the APIs it serves, :func:`kbroker.api.error_response.refusal`),
    in table order; none for an API kbroker does not serve."""
    modules = dict.fromkeys(row[1] for row in HANDLER_TABLE if row[0] == api_key)
    if api_key in CONTROLLER_ONLY_REFUSALS:
        modules[CONTROLLER_ONLY_REFUSALS[api_key]] = None
    return [f"{__name__}.{module}" for module in modules]


def load_handlers() -> None:
    """Import every module of this package (every handler registered for real)."""
    global _loaded
    if _loaded:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def install_handlers() -> None:
    """Register every API of :data:`HANDLER_TABLE`, each module imported on its first request."""
    global _installed
    if _installed or _loaded:
        return
    from kbroker.api.registry import defer

    for api_key, module, min_version, max_version, listeners in HANDLER_TABLE:
        defer(api_key, f"{__name__}.{module}", min_version, max_version, listeners)
    known = SUPPORT_MODULES.union(row[1] for row in HANDLER_TABLE)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name not in known:  # a handler module the table does not list yet
            importlib.import_module(f"{__name__}.{info.name}")
    _installed = True
