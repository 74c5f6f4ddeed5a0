"""The checks of a produced batch: its header (:func:`validate_produce_batch`: the request's rules,
then the log's; no partition state needed), its records inline or off the event loop, and
per-partition append order around them.

Checking the records of a produced batch (``kbroker_protocol.record_validation``) is cheap for the batches
clients normally send, and those are checked inline. Anything bigger -- many records, a large
decompressed payload, a re-encode for a topic whose ``compression.type`` differs from the producer's
-- goes to a :class:`ValidationPool`: a process pool (by default one worker per CPU beyond the first,
at least one), so that the work runs on another core while the event loop keeps serving every other
client. Threads were measured too (``scripts/bench_validation.py pool``, figures in
``scripts/README.md``): the codecs release the GIL, but the record walk is Python and holds it, so
with a thread pool the loop ran at 10-20% of its idle rate during a big validation, with the
process pool at 50-70% (on a loaded 2-core machine).

The worker receives a copy of the batch (bytes) and returns an :class:`Outcome`: an error with
Kafka's code, or the batch to store (the input itself, to keep, is not sent back: ``batch`` is
``None`` then, and the caller stores its own copy). Memory in the worker is bounded by the batch,
one decompression chunk plus one record, and for a rebuild the output, which stops at
``max.message.bytes``.

Order: :class:`AppendOrder` keeps appends to one partition in request order although validation
finishes out of order: an append waits for the append queued before it on the same partition.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import BrokenExecutor, Executor, ThreadPoolExecutor
from typing import Any, Protocol

from kbroker.log.thread_names import name_os_thread
from kbroker.replication.produce_batch import ProduceError
from kbroker_protocol import record_walk
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import (
    CONTROL_MASK,
    BatchHeader,
    InvalidRecordBatch,
    parse_header,
    validate_batch,
)
from kbroker_protocol.record_validation import (
    DEFAULT_MAX_DECOMPRESSED,
    Outcome,
    OverBudget,
    Policy,
    validate_records,
)
from kbroker_protocol.records import Buffer, check_produce_batch

log = logging.getLogger(__name__)

ZSTD = 4

# Inline (on the event loop) only while the work stays around a millisecond: the uncompressed walk
# costs ~0.7-1 us a record on this machine (scripts/README.md, "Produce validation").
INLINE_RECORDS = 2000
INLINE_DECOMPRESSED_BYTES = 2 * 1024 * 1024
INLINE_REBUILD_BYTES = 128 * 1024  # compressing is slower than decompressing (gzip: ~30 MB/s)
# While the pool's worker is still starting (its first use: a forkserver and a worker process that
# import the codec, 1.1-1.3 s at load average 25), a batch up to these bounds is checked inline
# rather than wait for it (~8 ms of the loop at most, once per pool start).
COLD_INLINE_RECORDS = 5 * INLINE_RECORDS
COLD_INLINE_DECOMPRESSED_BYTES = 5 * INLINE_DECOMPRESSED_BYTES
COLD_INLINE_REBUILD_BYTES = 5 * INLINE_REBUILD_BYTES


def _warm_up() -> None:
    """Run in a new worker: unpickling this function imported this module and the codec."""


def _validate_in_worker(batch: bytes, policy: Policy) -> Outcome:
    seen = record_walk.delay_headers_seen
    outcome = validate_records(batch, parse_header(batch), policy)
    outcome.delay_headers = record_walk.delay_headers_seen != seen  # kbroker/delayed.py
    if outcome.batch is batch:
        outcome.batch = None  # unchanged: do not send it back
    elif outcome.batch is not None and not isinstance(outcome.batch, bytes):
        outcome.batch = bytes(outcome.batch)
    return outcome


class ValidationPool:
    """Runs :func:`kbroker_protocol.record_validation.validate_records` in worker processes (or threads)."""

    def __init__(self, workers: int | None = None, kind: str = "process") -> None:
        if workers is None:
            workers = max(1, (os.cpu_count() or 1) - 1)
        if kind not in ("process", "thread"):
            raise ValueError(f"unknown pool kind {kind!r}")
        self.workers = workers
        self.kind = kind
        self._executor: Executor | None = None
        self._closed = False
        self._ready = kind == "thread"  # a thread pool has no start-up to speak of
        self._warming: asyncio.Future[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether a worker has answered since the pool (re)started: before that, handing it a
        batch waits for the worker's start-up."""
        return self._ready

    def warm(self) -> None:
        """Start the workers in the background (once); :attr:`ready` turns True when one answers."""
        if self._ready or self._warming is not None or self._closed:
            return
        executor = self._get()
        warming = self._warming = asyncio.get_running_loop().run_in_executor(executor, _warm_up)

        def warmed(fut: asyncio.Future[None]) -> None:
            if self._warming is fut:
                self._warming = None
                if not fut.cancelled() and fut.exception() is None and self._executor is executor:
                    self._ready = True

        warming.add_done_callback(warmed)

    def check_while_cold(self, batch: Buffer, header
: BatchHeader, policy: Policy, rebuild: bool) -> Outcome | None:
        """A batch over the inline budget while no worker has answered yet: its outcome, checked
        here (up to the ``COLD_INLINE_*`` bounds) instead of waiting for the worker's start-up,
        which this begins; None: hand it to :meth:`validate`."""
        if self._ready:
            return None
        self.warm()
        try:
            return validate_records(batch, header, policy, budget_records=COLD_INLINE_RECORDS,
                                    budget_bytes=COLD_INLINE_REBUILD_BYTES if rebuild else COLD_INLINE_DECOMPRESSED_BYTES)
        except OverBudget:
            return None

    def _get(self) -> Executor:
        if self._executor is None:
            if self.kind == "thread":
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="kbroker-validate",
                                                    initializer=name_os_thread)
            else:
                # forkserver: workers fork from a clean server process, not from the broker's
                # threads and event loop. multiprocessing is imported here, when a process pool
                # is first used (~5 ms of every start otherwise).
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                methods = multiprocessing.get_all_start_methods()
                ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
                self._executor = ProcessPoolExecutor(self.workers, mp_context=ctx)
        return self._executor

    async def validate(self, batch: Buffer, policy: Policy) -> Outcome:
        """Validate ``batch`` in the pool; a failure of the pool itself is UNKNOWN_SERVER_ERROR."""
        if self._closed:
            return Outcome(ErrorCode.NOT_LEADER_OR_FOLLOWER, "The broker is shutting down")
        data = batch if isinstance(batch, bytes) else bytes(batch)
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(self._get(), _validate_in_worker, data, policy)
        except BrokenExecutor as exc:  # BrokenProcessPool (a thread pool without initializer never breaks)
            log.error("record validation worker failed: %s; starting a new pool", exc)
            self._reset()
            return Outcome(ErrorCode.UNKNOWN_SERVER_ERROR, "Record validation failed")
        except RuntimeError as exc:  # submitted while shutting down
            return Outcome(ErrorCode.NOT_LEADER_OR_FOLLOWER, str(exc))
        self._ready = True
        if outcome.error == ErrorCode.NONE and outcome.batch is None:
            outcome.batch = batch
        return outcome

    def _reset(self) -> None:
        self._ready = self.kind == "thread"
        self._warming = None
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._closed = True
        self._reset()


class AppendOrder:
    """Per-partition queue of pending appends: ``await turn`` waits for the one queued before."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether an append is queued (a new one must then wait its turn)."""
        return self._tail is not None

    def enqueue(self) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """Take a place: ``(the previous place or None, this place)``; finish it with :meth:`done`."""
        prev = self._tail
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tail = mine
        return prev, mine

    def done(self, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        if self._tail is mine:
            self._tail = None


class TopicPartitionConfig(Protocol):
    """What the validation policy reads of a partition (``replication.partition.Partition``)."""

    topic: str
    index: int
    config: dict[str, Any]


# A batch may decompress to at most this many times max.message.bytes (at least 64 MiB): a bound on
# the work a "decompression bomb" causes (Kafka has none).
DECOMPRESSED_PER_MESSAGE_BYTE = 8


_TOPIC_CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # "producer": keep
_LEVEL_KEYS = {1: "compression.gzip.level", 3: "compression.lz4.level", 4: "compression.zstd.level"}


def validation_policy(partition: TopicPartitionConfig, now_ms: int) -> Policy:
    """What the partition's topic config asks of a produced batch (Kafka's LogValidator inputs).

    The config's part is read once per config dict (a topic config change replaces the partition's
    dict, kbroker/wiring/local_partitions.py) and kept on the partition (``policy_args``), with the
    last policy made: a request in the same millisecond gets that one again (a Policy is frozen; a
    busy partition takes many requests a millisecond, and building one costs a dozen attribute sets)."""
    config = partition.config
    cached = getattr(partition, "policy_args", None)
    if cached is not None and cached[0] is config:
        last: Policy = cached[2]
        if last.now_ms == now_ms:
            return last
        args = cached[1]
    else:
        args = _policy_args(partition, config)
    policy = Policy(args[0], now_ms, *args[1:])
    if hasattr(partition, "policy_args"):
        partition.policy_args = (config, args, policy)
    return policy


def _policy_args(partition: TopicPartitionConfig, config: dict[str, Any]) -> tuple[Any, ...]:
    """:class:`Policy`'s fields but ``now_ms``, in order, from the topic config."""
    target = _TOPIC_CODECS.get(config["compression.type"])
    level_key = _LEVEL_KEYS.get(target) if target is not None else None  # (None: no level to set)
    level = config[level_key] if level_key is not None else None
    max_message_bytes = config["max.message.bytes"]
    return (
        f"{partition.topic}-{partition.index}",  # topic_partition
        max_message_bytes,
        "compact" in config["cleanup.policy"],  # compacted
        config["message.timestamp.type"] == "LogAppendTime",  # log_append_time
        config["message.timestamp.before.max.ms"],
        config["message.timestamp.after.max.ms"],
        target,  # target_codec
        None if level == -1 else level,  # compression_level
        max(DEFAULT_MAX_DECOMPRESSED, DECOMPRESSED_PER_MESSAGE_BYTE * max_message_bytes),  # max_decompressed
    )


def raise_for_outcome(outcome: Outcome) -> Buffer:
    """A failed validation as the ProduceError the Produce path answers; else the batch to store."""
    if outcome.error != ErrorCode.NONE:
        raise ProduceError(ErrorCode(outcome.error), outcome.message, outcome.record_errors)
    assert outcome.batch is not None  # (a successful outcome always names the batch to store)
    return outcome.batch


def validate_produce_batch(records: Buffer | None, version: int, max_message_bytes: int,
                           topic_partition: str = "") -> tuple[BatchHeader, Buffer]:
    """Check the single batch of a v3+ Produce partition; returns ``(header, batch bytes)``:
    :func:`check_request_batch`, then :func:`check_batch_header`."""
    header, records = check_request_batch(records, version)
    return check_batch_header(records, header, max_message_bytes, topic_partition)


def check_request_batch(records: Buffer | None, version: int) -> tuple[BatchHeader | None, Buffer]:
    """The request-level rules, Kafka's ``ProduceRequest.validateRecords`` (its KafkaApis checks
    them before the replica manager looks at the partition:
    :func:`kbroker_protocol.records.check_produce_batch`); returns the header parsed there (None for
    records shorter than one) and the records, for :func:`check_batch_header`."""
    code, header = check_produce_batch(version, records)  # (the header parsed once, there)
    if code != ErrorCode.NONE:
        raise ProduceError(code, _REQUEST_ERRORS.get(code))
    if records is None:  # (only below v3, which Produce rejects before: check_produce_batch checks v3+)
        raise ProduceError(ErrorCode.INVALID_RECORD, _REQUEST_ERRORS[ErrorCode.INVALID_RECORD])
    return header, records


def request_batch_error(records: Buffer | None, version: int) -> ErrorCode:
    """:func:`check_request_batch`'s answer as a code (NONE: the request-level rules hold)."""
    code, _header = check_produce_batch(version, records)
    if code == ErrorCode.NONE and records is None:
        return ErrorCode.INVALID_RECORD
    return code


def check_batch_header(records: Buffer, header: BatchHeader | None, max_message_bytes: int,
                       topic_partition: str = "") -> tuple[BatchHeader, Buffer]:
    """The log's checks of a batch that passed :func:`check_request_batch` (``header`` its result),
    as Kafka's ``UnifiedLog.analyzeAndValidateRecords`` and ``LogValidator.validateBatch`` do from
    the header alone, after the leader's min-ISR check (``Partition.appendRecordsToLeader``):
    baseOffset 0, size against ``max.message.bytes``, CRC, control bit, codec, offset range and
    count, a sequence for a producer id. ``topic_partition`` names the partition in messages.
    """
    try:
        if header is None:
            header = parse_header(records, 0)  # (a batch shorter than its header: CORRUPT_MESSAGE)
        if header.base_offset != 0:  # (not covered by the CRC: checked before it, as Kafka does)
            raise ProduceError(ErrorCode.INVALID_RECORD, f"The baseOffset of the record batch in the append to "
                               f"{topic_partition} should be 0, but it is {header.base_offset}")
        size = header.size
        if size != len(records):
            records = records[:size]  # a trailing fragment is dropped, as Kafka's log does
        if size > max_message_bytes:
            raise ProduceError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"The record batch size {size} exceeds the maximum message size {max_message_bytes}",
            )
        validate_batch(records, 0, header)  # length, magic, CRC
    except InvalidRecordBatch as exc:
        raise ProduceError(ErrorCode.CORRUPT_MESSAGE, str(exc)) from None
    if header.attributes & CONTROL_MASK:
        raise ProduceError(ErrorCode.INVALID_RECORD, "Clients are not allowed to write control records")
    if header.compression > ZSTD:
        raise ProduceError(ErrorCode.CORRUPT_MESSAGE, f"Unknown compression type id {header.compression}")
    if header.records_count <= 0 or header.last_offset_delta != header.records_count - 1:
        raise ProduceError(ErrorCode.INVALID_RECORD, "Inconsistent record count and offset delta in batch")
    if header.producer_id >= 0 and header.base_sequence < 0:
        raise ProduceError(ErrorCode.INVALID_RECORD, f"Invalid sequence number {header.base_sequence} in record batch "
                           f"with producerId {header.producer_id} in topic partition {topic_partition}")
    return header, records


_REQUEST_ERRORS = {
    ErrorCode.INVALID_RECORD: "Produce requests with version 3+ must carry exactly one record batch with magic 2",
    ErrorCode.UNSUPPORTED_COMPRESSION_TYPE: "Produce requests with ZStandard compression need version 7 or later",
}
