"""The controller's refusal of an operation: a Kafka error code and message (Kafka's ApiException as
``ApiError.fromThrowable`` reports it). Its own module so that the sans-IO controller layers
(replication_control, placement) raise it without importing the quorum."""

from __future__ import annotations

from kbroker_protocol.errors import ErrorCode


class ControllerError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message
