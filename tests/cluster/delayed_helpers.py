"""Delayed-delivery helpers for cluster tests: partition 0's leader and high watermark."""

from __future__ import annotations


def _leader(admin, topic: str) -> int | None:
    """Partition 0's leader in the metadata, None until it has one (just after its creation)."""
    parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return parts[0].leader if 0 in parts and parts[0].leader >= 0 else None


def _high(cluster, nodes, topic: str) -> int:
    """Partition 0's high watermark, from whichever of ``nodes`` leads it (ListOffsets)."""
    from kbroker_protocol.messages import REQUESTS

    L = REQUESTS[2]
    best = -1
    for n in nodes:
        try:
            w = cluster.wire(n)
            try:
                resp = w.call(2, 7, replica_id=-1, isolation_level=0, topics=[L.ListOffsetsTopic(
                    name=topic, partitions=[L.ListOffsetsTopic.ListOffsetsPartition(
                        partition_index=0, current_leader_epoch=-1, timestamp=-1)])])
            finally:
                w.close()
        except OSError:
            continue
        part = resp.topics[0].partitions[0]
        if part.error_code == 0:
            best = max(best, part.offset)
    return best
