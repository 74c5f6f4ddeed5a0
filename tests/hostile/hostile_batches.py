"""Record batches whose records contradict their header, or whose compressed payload is not what it
claims: the hostile Produce inputs of issue 13. Every batch has a correct header CRC, so only a
broker that looks at the records can tell; and two whose header breaks a rule Kafka checks before
the records (a baseOffset other than 0, a producer id without a sequence).

Also used by ``scripts/probe_produce_validation.py`` to compare kbroker's answers with Apache
Kafka's.
"""

from __future__ import annotations

import struct
import zlib

import cramjam
import lz4.frame
import zstandard

from kbroker_protocol.compression import Codec, compress
from kbroker_protocol.record_batch import CRC_OFFSET, HEADER_SIZE, compute_crc
from kbroker_protocol.records import Record, build_batch

BASE_TS = 1_700_000_000_000
_COUNT_OFFSET = 57
_LAST_OFFSET_DELTA_OFFSET = 23
_LENGTH_OFFSET = 8
_ATTRIBUTES_OFFSET = 21


def records(n: int = 3, key: bool = True) -> list[Record]:
    now = BASE_TS
    return [Record(key=b"k%d" % i if key else None, value=b"value-%d" % i, timestamp=now + i) for i in range(n)]


def fix_crc(batch: bytes | bytearray) -> bytes:
    out = bytearray(batch)
    struct.pack_into(">I", out, CRC_OFFSET, compute_crc(out, 0, len(out)))
    return bytes(out)


def with_count(batch: bytes, count: int) -> bytes:
    """``batch`` claiming ``count`` records (lastOffsetDelta kept consistent, CRC recomputed)."""
    out = bytearray(batch)
    struct.pack_into(">i", out, _COUNT_OFFSET, count)
    struct.pack_into(">i", out, _LAST_OFFSET_DELTA_OFFSET, count - 1)
    return fix_crc(out)


def with_payload(batch: bytes, codec: int, payload: bytes) -> bytes:
    """``batch``'s header over ``payload`` as its records section, attributes saying ``codec``."""
    out = bytearray(batch[:HEADER_SIZE]) + payload
    struct.pack_into(">i", out, _LENGTH_OFFSET, len(out) - 12)
    attrs = struct.unpack_from(">h", out, _ATTRIBUTES_OFFSET)[0]
    struct.pack_into(">h", out, _ATTRIBUTES_OFFSET, (attrs & ~0x07) | codec)
    return fix_crc(out)


def count_lies(count: int, n: int = 3) -> bytes:
    return with_count(build_batch(records(n)), count)


def length_overrun() -> bytes:
    """The first record's length varint claims more bytes than the batch holds."""
    batch = bytearray(build_batch(records(3)))
    # one-byte zigzag varint at the start of the records: 0x7e is 63, beyond the ~45 bytes left
    assert batch[HEADER_SIZE] < 0x80
    batch[HEADER_SIZE] = 0x7E
    return fix_crc(batch)


def garbage(codec: int, size: int = 64) -> bytes:
    payload = bytes((i * 37 + 11) & 0xFF for i in range(size))
    return with_payload(build_batch(records(3)), codec, payload)


def compressed(codec: int, section: bytes, n: int) -> bytes:
    """A batch whose records section is ``section`` compressed with ``codec``; header says ``n`` records."""
    batch = build_batch(records(n))
    out = with_payload(batch, codec, compress(codec, section))
    return out


def bomb(decompressed_size: int = 512 * 1024 * 1024) -> bytes:
    """A zstd batch of one record whose value is ``decompressed_size`` zero bytes: about 16 KB on the
    wire. (Built with a streaming compressor: the value is never held in memory.)"""
    from kbroker_protocol.record_build import _write_varint  # the varint writer the codec uses

    body = bytearray(b"\x00")  # attributes
    _write_varint(body, 0)  # timestamp delta
    _write_varint(body, 0)  # offset delta
    _write_varint(body, 1)
    body += b"k"
    _write_varint(body, decompressed_size)
    tail = b"\x00"  # header count
    length = len(body) + decompressed_size + len(tail)
    head = bytearray()
    _write_varint(head, length)
    head += body
    cctx = zstandard.ZstdCompressor(level=1)
    obj = cctx.compressobj()
    chunks = [obj.compress(bytes(head))]
    zeros = bytes(1 << 20)
    left = decompressed_size
    while left:
        step = min(left, len(zeros))
        chunks.append(obj.compress(zeros[:step]))
        left -= step
    chunks.append(obj.compress(tail))
    chunks.append(obj.flush())
    return with_payload(build_batch(records(1)), Codec.ZSTD, b"".join(chunks))


def gzip_truncated() -> bytes:
    section = build_batch(records(3))[HEADER_SIZE:]
    comp = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    payload = comp.compress(section) + comp.flush()
    return with_payload(build_batch(records(3)), Codec.GZIP, payload[: len(payload) // 2])


def named() -> dict[str, bytes]:
    """Every hostile batch of issue 13 hole 2, by name."""
    three = build_batch(records(3))[HEADER_SIZE:]
    return {
        "count 2^31-1": count_lies(2**31 - 1),
        "count 10 for 3": count_lies(10),
        "count 1 for 3": count_lies(1),
        "record length overrun": length_overrun(),
        "gzip over garbage": garbage(Codec.GZIP),
        "snappy over garbage": garbage(Codec.SNAPPY),
        "lz4 over garbage": garbage(Codec.LZ4),
        "zstd over garbage": garbage(Codec.ZSTD),
        "gzip truncated": gzip_truncated(),
        "zstd count 10 for 3": with_count(compressed(Codec.ZSTD, three, 3), 10),
        "lz4 count 1 for 3": with_count(compressed(Codec.LZ4, three, 3), 1),
        "snappy raw count 2 for 3": with_count(
            with_payload(build_batch(records(3)), Codec.SNAPPY, bytes(cramjam.snappy.compress_raw(three))), 2),
        "lz4 frame of zeros": with_payload(build_batch(records(3)), Codec.LZ4, lz4.frame.compress(bytes(4096))),
        "base offset 5": build_batch(records(3), base_offset=5),
        "producer id without sequence": build_batch(records(3), producer_id=1234, producer_epoch=0, base_sequence=-1),
    }
