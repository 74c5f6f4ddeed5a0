"""kbroker's inter-node client against Apache Kafka 4.4 (the reference): a Kafka node whose
controller listener is SASL_PLAINTEXT with PLAIN, configured with the same keys a kbroker node
reads (``listener.security.protocol.map``, ``sasl.mechanism.controller.protocol``,
``listener.name.controller.plain.sasl.jaas.config``), starts (Kafka's own raft client logs in with
them) and kbroker's client, built from those keys, authenticates to it and is answered; a wrong
password gets Kafka's refusal."""

from __future__ import annotations

import asyncio

import pytest
import reference_kafka

from kbroker.config import BrokerConfig, load_properties_file
from kbroker.security.client import AuthenticationError, controller_client_security, open_connection
from kbroker_protocol.api import decode_response, encode_request
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.messages.describe_quorum import DescribeQuorumRequest

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SASL_CONTROLLER = {
    "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "sasl.mechanism.controller.protocol": "PLAIN",
    "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
    "listener.name.controller.plain.sasl.jaas.config":
        f'{PLAIN} required username="ctl" password="ctl-secret" user_ctl="ctl-secret";',
}


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    handle = reference_kafka.start_reference_kafka(tmp_path_factory.mktemp("refkafka"), SASL_CONTROLLER,
                                                   heap="384m")
    try:
        yield handle
    finally:
        handle.stop()


async def describe_quorum(host: str, port: int, security) -> object:
    reader, writer = await asyncio.wait_for(open_connection(host, port, security, client_id="kbroker-test"), 30)
    try:
        D = DescribeQuorumRequest
        header = RequestHeader(request_api_key=55, request_api_version=2, correlation_id=7, client_id="kbroker-test")
        payload = encode_request(header, D(topics=[D.TopicData(
            topic_name="__cluster_metadata", partitions=[D.TopicData.PartitionData(partition_index=0)])]))
        writer.write(len(payload).to_bytes(4, "big") + payload)
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 30), "big")
        _h, body = decode_response(await reader.readexactly(size), 55, 2)
        return body
    finally:
        writer.close()


def test_kbroker_client_logs_in_to_kafkas_sasl_controller_listener(kafka):
    props = load_properties_file(kafka.workdir / "server.properties")
    security = controller_client_security(BrokerConfig(props, warn=False))
    assert (security.protocol, security.mechanism, security.username) == ("SASL_PLAINTEXT", "PLAIN", "ctl")
    host, port = props["controller.quorum.voters"].split("@", 1)[1].rsplit(":", 1)
    body = asyncio.run(describe_quorum(host, int(port), security))
    assert body.error_code == 0 and body.topics[0].partitions[0].leader_id == 1

    wrong = BrokerConfig(dict(props, **{"listener.name.controller.plain.sasl.jaas.config":
                                        f'{PLAIN} required username="ctl" password="nope";'}), warn=False)
    with pytest.raises(AuthenticationError, match="^Authentication failed: Invalid username or password$"):
        asyncio.run(describe_quorum(host, int(port), controller_client_security(wrong)))
