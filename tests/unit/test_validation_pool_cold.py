"""A validation pool whose worker is still starting does not hold up a batch of moderate size: it
is checked inline (kbroker.replication.validation.ValidationPool.check_while_cold) while the worker
starts; once a worker has answered, big batches go to it again."""

from __future__ import annotations

import asyncio
import time

from kbroker.replication.validation import COLD_INLINE_RECORDS, INLINE_RECORDS, ValidationPool
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.record_batch import compute_crc, parse_header
from kbroker_protocol.record_validation import Policy
from kbroker_protocol.records import Record, build_batch
from tests.integration.waiting import async_wait_until


def _policy() -> Policy:
    return Policy(topic_partition="t-0", now_ms=int(time.time() * 1000), max_message_bytes=10_000_000,
                  compacted=False, log_append_time=False, before_max_ms=2**62, after_max_ms=2**62,
                  target_codec=None, compression_level=None, max_decompressed=1 << 30)


def _batch(n: int) -> bytes:
    now = int(time.time() * 1000)
    return bytes(build_batch([Record(key=None, value=b"v%d" % i, timestamp=now) for i in range(n)]))


def test_a_cold_process_pool_checks_a_moderate_batch_inline_and_starts_its_worker():
    async def run() -> None:
        pool = ValidationPool(workers=1)
        try:
            assert not pool.ready
            batch = _batch(INLINE_RECORDS + 500)
            outcome = pool.check_while_cold(batch, parse_header(batch), _policy(), False)
            assert outcome is not None and outcome.error == ErrorCode.NONE
            await async_wait_until(lambda: pool.ready, 60, message="the pool's worker started")  # the worker started meanwhile
            assert pool.check_while_cold(batch, parse_header(batch), _policy(), False) is None
            outcome = await pool.validate(batch, _policy())
            assert outcome.error == ErrorCode.NONE and outcome.batch is batch
        finally:
            pool.close()

    asyncio.run(run())


def test_a_cold_pool_reports_a_bad_batch_as_the_worker_would():
    async def run() -> None:
        pool = ValidationPool(workers=1)
        try:
            good = _batch(INLINE_RECORDS + 10)
            bad = bytearray(good)
            bad[57:61] = (INLINE_RECORDS + 11).to_bytes(4, "big")  # the header's record count, one too many
            bad[17:21] = compute_crc(bad).to_bytes(4, "big")
            inline = pool.check_while_cold(bytes(bad), parse_header(bytes(bad)), _policy(), False)
            await async_wait_until(lambda: pool.ready, 60, message="the pool's worker started")
            in_worker = await pool.validate(bytes(bad), _policy())
            assert inline is not None and inline.error == in_worker.error == ErrorCode.INVALID_RECORD
        finally:
            pool.close()

    asyncio.run(run())


def test_a_batch_over_the_cold_bound_still_goes_to_the_pool():
    async def run() -> None:
        pool = ValidationPool(workers=1)
        try:
            batch = _batch(COLD_INLINE_RECORDS + 1)
            assert pool.check_while_cold(batch, parse_header(batch), _policy(), False) is None
            outcome = await pool.validate(batch, _policy())
            assert outcome.error == ErrorCode.NONE and pool.ready
        finally:
            pool.close()

    asyncio.run(run())


def test_a_thread_pool_is_never_cold():
    pool = ValidationPool(workers=1, kind="thread")
    batch = _batch(INLINE_RECORDS + 1)
    assert pool.ready and pool.check_while_cold(batch, parse_header(batch), _policy(), False) is None
    pool.close()
