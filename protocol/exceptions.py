"""Exceptions raised by the wire codec.

:class:`ProtocolError` means the peer sent bytes that are not a valid Kafka message; a server
answers it by closing the connection (or with an error code where Kafka does so).
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Malformed input from the peer: truncated, oversized, or otherwise not decodable."""


class FrameTooLargeError(ProtocolError):
    """A frame's length prefix is negative or larger than the configured maximum."""


class UnsupportedVersionError(ProtocolError):
    """A request names an API or version this codec does not know."""

    def __init__(self, api_key: int, api_version: int, message: str | None = None) -> None:
        super().__init__(message or f"unsupported api key {api_key} version {api_version}")
        self.api_key = api_key
        self.api_version = api_version
        # What of the request's header decoded, when a frame was refused (set by api.decode_request).
        self.correlation_id: int | None = None
        # (a RequestHeader or None; typed as object: this module sits below the generated messages)
        self.header: object = None
