"""Bounded fuzzing of the decoders: hostile bytes decode or raise ProtocolError, nothing else.

Valid frames for every request and response version are built by the reference interpreter,
then mutated (truncations, byte flips, inserted or overwritten giant lengths, over-long varints).
The only outcomes allowed are a decoded value or ``ProtocolError`` (``UnsupportedVersionError``
is one).  Memory use is checked with ``tracemalloc``: whatever a frame claims, decoding it must
not allocate much more than the frame's own size.  ``scripts/fuzz_codec.py`` runs the same
harness for longer.
"""

from __future__ import annotations

import random
import struct
import tracemalloc

import pytest

import kbroker_protocol.messages as messages
from kbroker_protocol.api import (
    decode_request,
    decode_response,
    request_header_version,
    response_header_version,
)
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.interpreter import Schema, load_specs, random_value
from kbroker_protocol.mutation import mutate as shared_mutate

SPECS = load_specs()
HEADER = Schema(SPECS["RequestHeader"])
SEED = 20260521

def request_frame(cls: type, version: int, rng: random.Random) -> bytes:
    header = {
        "request_api_key": cls.API_KEY,
        "request_api_version": version,
        "correlation_id": rng.randrange(1 << 31),
        "client_id": rng.choice([None, "", "client-1"]),
        "unknown_tagged_fields": [],
    }
    body = Schema(SPECS[cls.__name__])
    return HEADER.encode(header, request_header_version(cls.API_KEY, version)) + body.encode(
        random_value(body, version, rng), version
    )


def response_body(cls: type, version: int, rng: random.Random) -> bytes:
    body = Schema(SPECS[cls.__name__])
    return body.encode(random_value(body, version, rng), version)


def mutate(data: bytes, rng: random.Random) -> bytes:
    return shared_mutate(data, rng, rounds=1)


def decode_request_ok(frame: bytes) -> None:
    try:
        decode_request(frame)
    except ProtocolError:
        pass
    except Exception as exc:  # pragma: no cover - the failure report
        raise AssertionError(f"{type(exc).__name__}: {exc} for request frame {frame.hex()}") from exc


def decode_response_ok(cls: type, data: bytes, version: int) -> None:
    try:
        decode_response(data, cls.API_KEY, version)
    except ProtocolError:
        pass
    except Exception as exc:  # pragma: no cover - the failure report
        raise AssertionError(f"{type(exc).__name__}: {exc} for {cls.__name__} v{version} {data.hex()}") from exc


def all_versions(table: dict[int, type]) -> list[tuple[type, int]]:
    return [(cls, v) for _, cls in sorted(table.items()) for v in range(cls.MIN_VERSION, cls.MAX_VERSION + 1)]


REQUEST_PAIRS = all_versions(messages.REQUESTS)
RESPONSE_PAIRS = all_versions(messages.RESPONSES)


def test_mutated_requests_decode_or_raise_protocol_error():
    rng = random.Random(SEED)
    decoded = rejected = 0
    for cls, version in REQUEST_PAIRS:
        frame = request_frame(cls, version, rng)
        header, body = decode_request(frame)  # the unmutated frame is valid
        assert type(body) is cls and header.request_api_version == version
        for _ in range(60):
            bad = mutate(frame, rng)
            try:
                decode_request(bad)
                decoded += 1
            except ProtocolError:
                rejected += 1
            except Exception as exc:
                raise AssertionError(f"{type(exc).__name__}: {exc} for {cls.__name__} v{version}: {bad.hex()}") from exc
    assert rejected > 1000 and decoded > 100  # both outcomes were exercised


def test_mutated_responses_decode_or_raise_protocol_error():
    rng = random.Random(SEED + 1)
    for cls, version in RESPONSE_PAIRS:
        header = b"\x00\x00\x00\x07" + (b"\x00" if response_header_version(cls.API_KEY, version) else b"")
        data = header + response_body(cls, version, rng)
        assert type(decode_response(data, cls.API_KEY, version)[1]) is cls
        for _ in range(60):
            decode_response_ok(cls, mutate(data, rng), version)


def test_random_frames_with_valid_key_and_version():
    rng = random.Random(SEED + 2)
    for cls, version in REQUEST_PAIRS:
        for _ in range(10):
            decode_request_ok(struct.pack(">hh", cls.API_KEY, version) + rng.randbytes(rng.randrange(40)))
    for _ in range(500):
        decode_request_ok(rng.randbytes(rng.randrange(64)))


@pytest.mark.parametrize(("key", "version"), [(0, 9), (1, 12), (3, 12), (11, 5)])
def test_every_truncation_is_a_protocol_error(key, version):
    rng = random.Random(SEED + 3)
    cls = messages.REQUESTS[key]
    frame = request_frame(cls, version, rng)
    for cut in range(len(frame)):
        try:
            decode_request(frame[:cut])
        except ProtocolError:
            continue
        # A prefix may still be a complete message when trailing optional bytes were cut (it
        # cannot be for non-flexible versions whose last field is fixed), so only check type.
        assert cut > 0


def _metadata_v4_prefix() -> bytes:
    return struct.pack(">hhih", 3, 4, 1, 1) + b"c"


def _flexible_metadata_prefix() -> bytes:
    return struct.pack(">hhih", 3, 12, 1, 1) + b"c" + b"\x00"


@pytest.mark.parametrize(
    "frame",
    [
        _metadata_v4_prefix() + b"\x7f\xff\xff\xff" + b"\x00" * 64,  # 2^31-1 topics claimed
        _metadata_v4_prefix() + b"\xff\xff\xff\xfe",  # array length -2
        _metadata_v4_prefix() + b"\x00\x00\x00\x01\xff\xff",  # null topic name (not nullable)
        _metadata_v4_prefix() + b"\x00\x00\x00\x01\x00\x05ab",  # name longer than the frame
        _metadata_v4_prefix() + b"\x00\x00\x00\x01\x00\x02\xc3\x28\x01",  # invalid UTF-8
        _flexible_metadata_prefix() + b"\xff\xff\xff\xff\x0f",  # compact count 2^32-2
        _flexible_metadata_prefix() + b"\xff\xff\xff\xff\xff\x01",  # varint longer than 5 bytes
        _flexible_metadata_prefix() + b"\x02" + b"\x00" * 16 + b"\xff\xff\xff\xff\x07",  # giant name
        struct.pack(">hhih", 0, 3, 1, -1) + b"\xff\xff" + struct.pack(">hii", 1, 1, 1) + b"\x00\x01t"
        + struct.pack(">iii", 1, 0, 0x7FFFFFF0),  # Produce records length past the frame
        struct.pack(">hhi", 18, 3, 1) + b"\xff\xfe",  # client id length -2
    ],
)
def test_hostile_lengths_are_rejected(frame):
    with pytest.raises(ProtocolError):
        decode_request(frame)


def test_tagged_fields_cannot_overrun_or_claim_more_than_sent():
    # ApiVersions v3 request: client software name/version + a tagged section claiming 2^31 fields.
    frame = struct.pack(">hhih", 18, 3, 1, -1) + b"\x00" + b"\x02a\x02b" + b"\xff\xff\xff\xff\x07"
    with pytest.raises(ProtocolError):
        decode_request(frame)
    frame = struct.pack(">hhih", 18, 3, 1, -1) + b"\x00" + b"\x02a\x02b" + b"\x01\x05\x7f\x00"
    with pytest.raises(ProtocolError):  # one unknown field of 127 bytes, 1 byte present
        decode_request(frame)


def _peak_during(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_allocation_is_bounded_by_the_bytes_received():
    rng = random.Random(SEED + 4)
    worst = 0.0
    for cls, version in REQUEST_PAIRS[::3]:
        frame = request_frame(cls, version, rng)
        for _ in range(6):
            bad = bytes(mutate(frame, rng))
            bad = bad + b"\x00" * 256  # room for small claims to succeed partially

            def run(bad=bad):
                try:
                    decode_request(bad)
                except ProtocolError:
                    pass

            peak = _peak_during(run)
            worst = max(worst, peak / len(bad))
            assert peak < 64 * 1024 + 200 * len(bad), (cls.__name__, version, peak, bad.hex())
    # A frame claiming 2^31-1 int32s but carrying 64 KB.
    frame = struct.pack(">hhih", 3, 4, 1, 1) + b"c" + b"\x7f\xff\xff\xff" + b"\x00" * 65536
    peak = _peak_during(lambda: pytest.raises(ProtocolError, decode_request, frame))
    assert peak < 64 * 1024
    # A dense valid frame: 4000 topic entries, allocations stay proportional to the input.
    body = b"\x00\x00\x0f\xa0" + b"\x00\x01t" * 4000 + b"\x01\x00\x00"
    dense = struct.pack(">hhih", 3, 4, 1, 1) + b"c" + body
    peak = _peak_during(lambda: decode_request(dense))
    assert peak < 200 * len(dense)


def test_compact_strings_longer_than_kafkas_limit_are_rejected():
    # Kafka refuses strings over 0x7fff bytes even where a compact length could say more.
    name = b"a" * 0x8000
    frame = struct.pack(">hhih", 18, 3, 1, -1) + b"\x00" + b"\x81\x80\x02" + name + b"\x02b\x00"
    assert len(b"\x81\x80\x02") == 3  # uvarint 0x8001 = length 0x8000 + 1
    with pytest.raises(ProtocolError, match="32767"):
        decode_request(frame)
    ok = struct.pack(">hhih", 18, 3, 1, -1) + b"\x00" + b"\x80\x80\x02" + name[:-1] + b"\x02b\x00"
    assert decode_request(ok)[1].client_software_name == "a" * 0x7FFF
