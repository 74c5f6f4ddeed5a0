"""The error a rejected produced batch raises, and the result of an append.

Produce (``kbroker/api/produce.py``) answers with :class:`ProduceError`'s code; the checks
(``kbroker/replication/validation.py``), the replica manager and the producer state raise it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kbroker_protocol.errors import ErrorCode


@dataclass(slots=True)
class AppendResult:
    error: ErrorCode
    base_offset: int
    log_append_time: int = -1
    message: str | None = None
    last_offset: int = -1  # acks=all waits until the high watermark passes it


class ProduceError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None,
                 record_errors: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message
        self.record_errors = record_errors or []  # (batch index, message): Kafka's RecordError
