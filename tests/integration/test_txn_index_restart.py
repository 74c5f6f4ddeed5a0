"""The aborted-transaction index (the partitions' ``.txnindex`` files) across broker restarts:
read_committed consumers still skip aborted data after a clean stop (files loaded) and after a
crash with the index files gone (rebuilt from the log)."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from kbroker.log.partition_log import CLEAN_SHUTDOWN_FILE
from kbroker.log.txn_index import ENTRY_SIZE
from tests.integration.transaction_restart_helpers import _restartable, consume_all
from tests.integration.transactions_helpers import create_topic, free_port


@pytest.mark.parametrize("shutdown", ["clean", "crash"])
def test_read_committed_after_restart(tmp_path, shutdown):
    port = free_port()
    broker = _restartable(tmp_path, port).start()
    try:
        bootstrap = broker.bootstrap_servers
        create_topic(bootstrap, "t")
        producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="txnindex-restart")
        producer.init_transactions()
        for value, commit in ((b"c1", True), (b"a1", False), (b"a2", False), (b"c2", True)):
            producer.begin_transaction()
            producer.send("t", value).get(timeout=10)
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
        producer.close(timeout=5)
        assert [m.value for m in consume_all(bootstrap, "t", "read_committed", 8)] == [b"c1", b"c2"]
    finally:
        broker.stop()
    (partition_dir,) = tmp_path.glob("t-0")
    (index,) = partition_dir.glob("*.txnindex")
    assert index.stat().st_size == 2 * ENTRY_SIZE
    if shutdown == "crash":
        # As after a crash: no clean-shutdown marker, and the index files are gone.
        (partition_dir / CLEAN_SHUTDOWN_FILE).unlink()
        index.unlink()

    broker = _restartable(tmp_path, port).start()
    try:
        assert [m.value for m in consume_all(broker.bootstrap_servers, "t", "read_committed", 8)] == [b"c1", b"c2"]
        assert [m.value for m in consume_all(broker.bootstrap_servers, "t", "read_uncommitted", 8)] == [
            b"c1", b"a1", b"a2", b"c2"]
    finally:
        broker.stop()
    assert index.stat().st_size == 2 * ENTRY_SIZE
