"""Quorum and metadata queries against a process cluster, shared by the cluster tests (moved from test_quorum_processes)."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.create_topics import CreateTopicsRequest

E = ErrorCode


def quorum_view(cluster, node_id: int):
    """(error, leader id, epoch, high watermark, voter ids) as node ``node_id`` describes the quorum."""
    p = cluster.describe_quorum(node_id).topics[0].partitions[0]
    return p.error_code, p.leader_id, p.leader_epoch, p.high_watermark, sorted(v.replica_id for v in p.current_voters)


def agreed_leader(cluster, nodes=None) -> int | None:
    """The leader every running node names, when they agree and it answers DescribeQuorum as leader."""
    views = {}
    for n in nodes or cluster.node_ids:
        try:
            views[n] = quorum_view(cluster, n)
        except OSError:
            return None
    leaders = {v[1] for v in views.values()}
    if len(leaders) != 1 or -1 in leaders:
        return None
    leader = leaders.pop()
    if leader not in views or views[leader][0] != E.NONE:
        return None
    return leader


def metadata(cluster, node_id: int):
    w = cluster.wire(node_id)
    try:
        return w.call(3, 12, topics=None)
    finally:
        w.sock.close()


def create_topic(cluster, node_id: int, name: str, partitions: int = 1, replication: int = 3) -> int:
    C = CreateTopicsRequest
    w = cluster.wire(node_id)
    try:
        resp = w.call(C(topics=[C.CreatableTopic(name=name, num_partitions=partitions, replication_factor=replication,
                                                assignments=[], configs=[])], timeout_ms=10000), 7)
    finally:
        w.sock.close()
    return resp.topics[0].error_code
