"""ACLs on the streams group APIs and AlterReplicaLogDirs, as Kafka's KafkaApis checks them: READ on
the group for StreamsGroupHeartbeat and TopologyDescriptionUpdate, DESCRIBE on the group for
StreamsGroupDescribe, DESCRIBE on every topology topic, CREATE before creating internal topics,
ALTER on the cluster for AlterReplicaLogDirs."""

from __future__ import annotations

import uuid

from wire import Wire

from kbroker.security.acls import ALLOW, CLUSTER, CLUSTER_NAME, CREATE, DESCRIBE, GROUP, LITERAL, READ, TOPIC
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.messages.alter_replica_log_dirs import AlterReplicaLogDirsRequest
from kbroker_protocol.messages.streams_group_describe import StreamsGroupDescribeRequest
from kbroker_protocol.messages.streams_group_topology_description_update import (
    StreamsGroupTopologyDescriptionUpdateRequest,
)
from tests.streams.streams_group_helpers import (
    CONFIG,
    create_topic,
    hb,
    partitions_of,
    statuses,
    word_count_topology,
)

# Resources without ACLs are open to everyone; a resource with an ACL only to whom it names.
SECURED = {**CONFIG, "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
           "allow.everyone.if.no.acl.found": "true"}


def acl(w, resource_type, name, operation, principal):
    C = REQUESTS[30].AclCreation
    r = w.call(30, 3, creations=[C(resource_type=resource_type, resource_name=name, resource_pattern_type=LITERAL,
                                   principal=principal, host="*", operation=operation, permission_type=ALLOW)])
    assert [x.error_code for x in r.results] == [ErrorCode.NONE]


def test_streams_acls_as_kafka(tmp_path):
    with BrokerThread(config=SECURED) as b:
        w = Wire(b.bootstrap_servers)
        try:
            app = f"wc-{uuid.uuid4().hex[:8]}"
            source = f"{app}-in"
            create_topic(b, source, 2)
            topology = word_count_topology(app, source)
            # The group is someone else's: every streams API refuses it to this client.
            acl(w, GROUP, app, READ, "User:other")
            assert hb(w, app, "m", 0, topology=topology).error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
            d = w.call(StreamsGroupDescribeRequest(group_ids=[app]), 1).groups[0]
            assert d.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
            r = w.call(StreamsGroupTopologyDescriptionUpdateRequest(group_id=app, member_id="m", topology_epoch=0), 0)
            assert r.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
            # A group this client may read, over a source topic it may not describe.
            app2 = f"wc-{uuid.uuid4().hex[:8]}"
            source2 = f"{app2}-in"
            create_topic(b, source2, 2)
            acl(w, TOPIC, source2, DESCRIBE, "User:other")
            assert hb(w, app2, "m", 0, topology=word_count_topology(app2, source2)).error_code == \
                ErrorCode.TOPIC_AUTHORIZATION_FAILED
            # Internal topics are created only with CREATE on the cluster or on each topic.
            acl(w, TOPIC, f"{app}-x-counts-changelog", CREATE, "User:other")
            acl(w, TOPIC, f"{app}-x-counts-changelog", DESCRIBE, "User:ANONYMOUS")
            acl(w, CLUSTER, CLUSTER_NAME, CREATE, "User:other")  # the last ACL this client may create
            app3 = f"{app}-x"
            r = hb(w, app3, "m", 0, topology=word_count_topology(app3, source))
            assert r.error_code == ErrorCode.NONE
            assert 3 in statuses(r)
            detail = next(s.status_detail for s in r.status if s.status_code == 3)
            assert f"Unauthorized to CREATE on topics {app3}-counts-changelog." in detail
            assert partitions_of(b, f"{app3}-counts-changelog") is None
            assert partitions_of(b, f"{app3}-counts-repartition") is None
            # AlterReplicaLogDirs needs ALTER on the cluster (which now has ACLs, none for this client).
            D = AlterReplicaLogDirsRequest.AlterReplicaLogDir
            resp = w.call(AlterReplicaLogDirsRequest(dirs=[D(path=b.data_dir, topics=[
                D.AlterReplicaLogDirTopic(name=source, partitions=[0, 1])])]), 2)
            assert [(t.topic_name, [(p.partition_index, p.error_code) for p in t.partitions]) for t in resp.results] == [
                (source, [(0, ErrorCode.CLUSTER_AUTHORIZATION_FAILED), (1, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)])]
        finally:
            w.close()
