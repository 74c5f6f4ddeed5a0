"""kbroker_protocol.crc: CRC-32C from the crc32c extension, loaded without the package's __init__."""

from __future__ import annotations

import subprocess
import sys
import zlib

from kbroker_protocol.crc import crc32c


def test_known_vectors():
    # RFC 3720 (iSCSI) check value and test patterns.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0


def test_incremental_and_buffer_types():
    data = bytes(range(256)) * 7
    whole = crc32c(data)
    assert crc32c(data[700:], crc32c(data[:700])) == whole
    assert crc32c(memoryview(bytearray(data))) == whole
    assert whole != zlib.crc32(data)  # Castagnoli, not the zlib polynomial


def test_same_function_as_the_package():
    import crc32c as package

    assert package.crc32c(b"kbroker") == crc32c(b"kbroker")


def test_importing_the_codec_skips_the_package_init():
    # The package's __init__ imports importlib.metadata and argparse (30-40 ms of every start).
    code = ("import sys, kbroker_protocol.record_batch, kbroker_protocol.crc; "
            "print('crc32c' in sys.modules, 'importlib.metadata' in sys.modules, "
            "'crc32c._crc32c' in sys.modules, hex(kbroker_protocol.crc.crc32c(b'123456789')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "0xe3069283"]
