"""The transaction tests' broker (one a module, with the fast abort check of FAST_TIMEOUTS), its raw
client, the coordinator's state of a transactional id and AddPartitionsToTxn at the protocol level
(moved from test_transactions)."""

from __future__ import annotations

import pytest

from kbroker.testing import BrokerThread
from tests.integration.transaction_restart_helpers import FAST_TIMEOUTS
from tests.integration.transactions_helpers import (
    RawClient,
    ensure_find_coordinator,
)


@pytest.fixture(scope="module", name="txn_broker")
def txn_broker_fixture():
    ensure_find_coordinator()
    with BrokerThread(config=FAST_TIMEOUTS) as b:
        yield b


@pytest.fixture(name="bootstrap")
def bootstrap_fixture(txn_broker) -> str:
    return txn_broker.bootstrap_servers


@pytest.fixture(name="raw")
def raw_fixture(bootstrap):
    client = RawClient(bootstrap)
    yield client
    client.close()


def describe_state(broker: BrokerThread, transactional_id: str):
    txn = broker.call(lambda: broker.broker.txn_coordinator.txns.get(transactional_id))
    return None if txn is None else txn.state


def _add_partitions(raw, tid, pid, epoch, topic, partitions, version=3):
    from kbroker_protocol.messages.add_partitions_to_txn import (
        AddPartitionsToTxnRequest,
        AddPartitionsToTxnResponse,
        AddPartitionsToTxnTopic,
    )

    request = AddPartitionsToTxnRequest(v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
                                        v3_and_below_producer_epoch=epoch,
                                        v3_and_below_topics=[AddPartitionsToTxnTopic(name=topic, partitions=partitions)])
    response = raw.call(request, AddPartitionsToTxnResponse, version)
    return {p.partition_index: p.partition_error_code
            for t in response.results_by_topic_v3_and_below for p in t.results_by_partition}
