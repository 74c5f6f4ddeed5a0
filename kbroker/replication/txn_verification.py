"""Produce-side transaction verification with a coordinator on another broker (KIP-890): the
part of the replica manager (``replica_manager.ReplicaManager`` mixes it in) that asks the
transaction coordinator of a transactional batch, before the batch is appended, whether its
partition is in the transaction (verify only, before Produce v12) or has it added (Transactions V2,
Produce v12+), as Kafka's AddPartitionsToTxnManager."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import BatchHeader

if TYPE_CHECKING:
    from kbroker.config import BrokerConfig
    from kbroker.metadata.image import MetadataImage
    from kbroker.replication.partition import Partition
    from kbroker.replication.producer_manager import ProducerStateManager, TxnVerifier
    from kbroker.replication.producer_state import VerificationGuard
    from kbroker.replication.replica_fetcher import InternodeSecurity

log = logging.getLogger("kbroker.replication.replica_manager")  # (the name these messages always had)


class VerificationHost(Protocol):
    """What transaction verification reads of the broker: the image (brokers, the
    ``__transaction_state`` leaders), the config (the inter-broker listener) and that listener's
    security."""

    config: BrokerConfig
    image: MetadataImage

    @property
    def internode_security(self) -> InternodeSecurity: ...


class TxnVerification:
    """The verification half of the replica manager: the transaction coordinator it asks is
    ``producer_state.verifier`` (wired by kbroker.wiring.coordinators)."""

    broker: VerificationHost  # the owning broker: its image, config and inter-broker security
    producer_state: ProducerStateManager | None

    if TYPE_CHECKING:
        @property
        def node_id(self) -> int: ...

    def _needs_remote_verification(self, partition: Partition, header: BatchHeader, transactional_id: str | None,
                                   version: int) -> bool:
        """A transactional batch opening a transaction here whose coordinator is another broker:
        verify it there first (Kafka's AddPartitionsToTxnManager, KIP-890 part 1). From Produce
        v12 (Transactions V2) the batch adds the partition to the transaction, wherever the
        coordinator is: the append waits until the coordinator has logged (and replicated) it."""
        producer_state = self.producer_state
        verifier = None if producer_state is None else producer_state.verifier
        if verifier is None or not header.is_transactional or transactional_id is None:
            return False
        if version < 12 and len(self.broker.image.brokers) < 2:
            return False
        from kbroker.replication.producer_manager import partition_state

        if partition_state(partition).has_open_txn(header.producer_id, header.producer_epoch):
            return False
        return version >= 12 or not verifier.is_coordinator_for(transactional_id)

    def _txn_verifier(self) -> TxnVerifier:
        """The transaction coordinator that verifies transactional produces (installed with it)."""
        verifier = self.producer_state.verifier if self.producer_state is not None else None
        if verifier is None:
            raise RuntimeError("no transaction coordinator is installed to verify transactions")
        return verifier

    async def verify_with_coordinator(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                      topic: str, index: int, verify_only: bool = True) -> ErrorCode:
        """AddPartitionsToTxn (v5, as Kafka's brokers send it) for one partition to the transaction
        coordinator of ``transactional_id`` (the leader of its ``__transaction_state`` partition):
        verify only, or (Transactions V2, ``verify_only=False``) add the partition to the
        transaction. COORDINATOR_NOT_AVAILABLE when the coordinator cannot be reached."""
        from kbroker.replication.broker_connection import BrokerConnection, setup_timeout_s
        from kbroker_protocol.messages.add_partitions_to_txn import AddPartitionsToTxnRequest as Req
        from kbroker_protocol.messages.add_partitions_to_txn import AddPartitionsToTxnTopic

        verifier = self._txn_verifier()
        state = self.broker.image.partition("__transaction_state", verifier.partition_for(transactional_id))
        leader = state.leader if state is not None else -1
        reg = self.broker.image.brokers.get(leader) if leader >= 0 else None
        listener = self.broker.config.inter_broker_listener
        if reg is None or reg.fenced or listener not in reg.endpoints:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        host, port, _protocol = reg.endpoints[listener]
        request = Req(transactions=[Req.AddPartitionsToTxnTransaction(
            transactional_id=transactional_id, producer_id=producer_id, producer_epoch=producer_epoch,
            verify_only=verify_only, topics=[AddPartitionsToTxnTopic(name=topic, partitions=[index])])])
        conn = BrokerConnection(host, port, f"broker-{self.node_id}-txn-verification", 1 << 20,
                                self.broker.internode_security.inter_broker, leader,
                                receive_buffer=self.broker.config["socket.receive.buffer.bytes"])
        try:
            # Kafka's AddPartitionsToTxnManager (NetworkUtils.buildNetworkClient): the connection setup
            # timeout and request.timeout.ms
            await conn.open(setup_timeout_s(self.broker.config))
            response = await conn.request(request, 5, self.broker.config["request.timeout.ms"] / 1000)
        except Exception as exc:  # refused, reset, timed out
            log.info("transaction verification with broker %d failed: %s", leader, exc)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        finally:
            conn.close()
        code = ErrorCode(response.error_code)
        for result in response.results_by_transaction:
            for t in result.topic_results:
                for pr in t.results_by_partition:
                    if t.name == topic and pr.partition_index == index:
                        code = ErrorCode(pr.partition_error_code)
        return code

    async def _verify_remotely(self, partition: Partition, header: BatchHeader, transactional_id: str,
                               version: int) -> VerificationGuard:
        """AddPartitionsToTxn to the transaction coordinator, the leader of the id's
        ``__transaction_state`` partition: verify only before Produce v12, add the partition from
        v12 (Transactions V2; a coordinator on this broker adds it directly, the append waiting for
        that add to be replicated). Errors as Kafka's AddPartitionsToTxnManager and ReplicaManager
        translate them: the coordinator's unavailability answers NOT_ENOUGH_REPLICAS (a retriable
        error every producer knows), PRODUCER_FENCED INVALID_PRODUCER_EPOCH, TRANSACTION_ABORTABLE
        INVALID_TXN_STATE below Produce v11, CONCURRENT_TRANSACTIONS NOT_ENOUGH_REPLICAS below v12.

        Returns the producer's verification guard, made before the coordinator is asked (Kafka's
        VerificationGuard): the append requires it still to be there, so a marker written while
        the answer was on its way, or before the append, fails the append (INVALID_TXN_STATE)."""
        from kbroker.replication.producer_manager import partition_state

        add = version >= 12
        guard = partition_state(partition).start_verification(header.producer_id, header.producer_epoch, add)
        verifier = self._txn_verifier()
        if add and verifier.is_coordinator_for(transactional_id):
            code = await verifier.add_partition_from_produce(transactional_id, header.producer_id,
                                                             header.producer_epoch, partition.topic, partition.index)
        else:
            code = await self.verify_with_coordinator(transactional_id, header.producer_id, header.producer_epoch,
                                                      partition.topic, partition.index, verify_only=not add)
        if code == ErrorCode.PRODUCER_FENCED:
            code = ErrorCode.INVALID_PRODUCER_EPOCH
        elif code == ErrorCode.TRANSACTION_ABORTABLE and version <= 10:
            code = ErrorCode.INVALID_TXN_STATE
        elif code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED:
            code = ErrorCode.INVALID_TXN_STATE
        if code in (ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NOT_COORDINATOR,
                    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.NETWORK_EXCEPTION) or (
                code == ErrorCode.CONCURRENT_TRANSACTIONS and not add):
            code = ErrorCode.NOT_ENOUGH_REPLICAS
        if code != ErrorCode.NONE:
            raise ProduceError(code, f"Partition {partition.topic}-{partition.index} failed transaction "
                                     f"verification for producer {header.producer_id}: {code.name}")
        return guard
