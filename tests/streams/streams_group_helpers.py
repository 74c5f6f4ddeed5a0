"""Streams group requests and topologies shared by the streams group tests (moved from test_streams_groups)."""

from __future__ import annotations

import uuid

from waiting import wait_until

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.streams_group_heartbeat import StreamsGroupHeartbeatRequest, TaskIds, TopicInfo

CONFIG = {
    "group.streams.initial.rebalance.delay.ms": "0",
    "group.streams.heartbeat.interval.ms": "300",
    "group.streams.min.heartbeat.interval.ms": "300",
    "offsets.topic.num.partitions": "3",
}


Topology = StreamsGroupHeartbeatRequest.Topology


def word_count_topology(app: str, source: str, epoch: int = 0):
    """Two subtopologies as Kafka Streams' word count builds them: split words and repartition by
    word, then count into a store with a changelog."""
    repartition = f"{app}-counts-repartition"
    changelog = f"{app}-counts-changelog"
    return Topology(epoch=epoch, subtopologies=[
        Topology.Subtopology(subtopology_id="0", source_topics=[source], repartition_sink_topics=[repartition]),
        Topology.Subtopology(subtopology_id="1",
                             repartition_source_topics=[TopicInfo(name=repartition, partitions=0)],
                             state_changelog_topics=[TopicInfo(name=changelog, partitions=0)]),
    ])


def hb(wire, group, member_id, epoch, *, topology=None, active=None, standby=None, instance=None, process=None,
       version=1):
    if epoch == 0 and active is None:
        active = {}  # a joining member sends empty task lists (null ones are INVALID_REQUEST, as in Kafka)
    tasks = None if active is None else [TaskIds(subtopology_id=s, partitions=sorted(ps)) for s, ps in active.items()]
    return wire.call(StreamsGroupHeartbeatRequest(
        group_id=group, member_id=member_id, member_epoch=epoch, instance_id=instance,
        rebalance_timeout_ms=30000 if epoch == 0 else -1, topology=topology,
        active_tasks=tasks, standby_tasks=None if tasks is None else (standby or []),
        warmup_tasks=None if tasks is None else [], process_id=process or (member_id if epoch == 0 else None)),
        version)


def tasks_of(items):
    return {t.subtopology_id: set(t.partitions) for t in items or [] if t.partitions}


def statuses(resp):
    return {s.status_code for s in resp.status or []}


def create_topic(broker, name, partitions):
    from kbroker.metadata.new_topic import NewTopic
    from kbroker.replication.topics import create_topic as create

    assert broker.call(lambda: create(broker.broker, NewTopic(name, partitions, 1))).error == ErrorCode.NONE


def partitions_of(broker, name):
    def read():
        t = broker.broker.image.topic(name)
        return None if t is None else len(t.partitions)
    return broker.call(read)


def names():
    app = f"wc-{uuid.uuid4().hex[:8]}"
    return app, f"{app}-in"


MISSING_SOURCE, MISSING_INTERNAL, STALE = 1, 3, 0


def join_ready(wire, group, member, topology):
    """Join, then heartbeat until the internal topics exist and tasks are assigned."""
    r = hb(wire, group, member, 0, topology=topology)
    assert r.error_code == ErrorCode.NONE, r.error_message
    state = {"r": r, "active": tasks_of(r.active_tasks)}

    def ready():
        resp = hb(wire, group, member, state["r"].member_epoch, active=state["active"])
        assert resp.error_code == ErrorCode.NONE, resp.error_message
        if resp.active_tasks is not None:
            state["active"] = tasks_of(resp.active_tasks)
        state["r"] = resp
        return MISSING_INTERNAL not in statuses(resp) and state["active"]
    wait_until(ready, message="tasks assigned")
    return state
