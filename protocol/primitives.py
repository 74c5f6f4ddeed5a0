"""The codec's building blocks, where users of ``kbroker_protocol`` import them from.

They live in :mod:`kbroker_protocol.message` (the base class of every generated message and the
types of its field values), :mod:`kbroker_protocol.wire_read` (decoding) and
:mod:`kbroker_protocol.wire_write` (encoding); this module keeps the names importable from
``kbroker_protocol.primitives``, the path the codec has always offered for them.
"""

from __future__ import annotations

from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.message import ZERO_UUID, ExternalRecords, Message, Records, received_records
from kbroker_protocol.wire_read import Reader, decode_guard, read_uvarint
from kbroker_protocol.wire_write import Writer, write_uvarint

__all__ = [
    "ZERO_UUID",
    "ExternalRecords",
    "Message",
    "ProtocolError",
    "Reader",
    "Records",
    "Writer",
    "decode_guard",
    "read_uvarint",
    "received_records",
    "write_uvarint",
]
