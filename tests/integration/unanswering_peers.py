"""Peers that never answer, for the outgoing clients' timeouts (connection setup, request).

:class:`BlackHole` is a loopback address whose SYNs the kernel drops, so a connect to it hangs as
it would to a firewalled host: a listening socket with a backlog of 0 whose accept queue one
connection fills and which nobody accepts from. Linux drops a SYN to a listener whose accept queue
is full (``tcp_abort_on_overflow`` 0, the default: with 1 it would answer RST instead, which the
constructor refuses). :class:`SilentServer` accepts connections and reads what they send, never
answering (except ApiVersions when asked to, so a client gets as far as its real request); it
counts the connections it accepted.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from kbroker_protocol.api import decode_request, encode_response
from kbroker_protocol.messages.api_versions import ApiVersionsResponse

API_VERSIONS = 18


class BlackHole:
    def __init__(self) -> None:
        overflow = Path("/proc/sys/net/ipv4/tcp_abort_on_overflow").read_text().strip()
        assert overflow == "0", f"net.ipv4.tcp_abort_on_overflow is {overflow}: a full accept queue resets"
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.address: tuple[str, int] = self._listener.getsockname()
        self._filler = socket.create_connection(self.address, timeout=10)  # fills the accept queue

    def close(self) -> None:
        self._filler.close()
        self._listener.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SilentServer:
    """``api_versions``: the (api key, min, max) entries it answers ApiVersions with; None: it
    answers nothing at all."""

    def __init__(self, api_versions: list[tuple[int, int, int]] | None = None) -> None:
        self.api_versions = api_versions
        self.accepted = 0
        self.requests: list[int] = []  # the API keys of the requests read, ApiVersions included
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    async def start(self) -> SilentServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = self._server.sockets[0].getsockname()[:2]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big", signed=True)
                frame = await reader.readexactly(size)
                api_key = int.from_bytes(frame[:2], "big")
                self.requests.append(api_key)
                if api_key == API_VERSIONS and self.api_versions is not None:
                    header, _body = decode_request(frame)
                    keys = [ApiVersionsResponse.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                            for k, lo, hi in [(API_VERSIONS, 0, 4), *self.api_versions]]
                    response: Any = ApiVersionsResponse(error_code=0, api_keys=keys)
                    chunks = encode_response(header.correlation_id, API_VERSIONS, header.request_api_version,
                                             response)
                    payload = b"".join(c if isinstance(c, bytes) else bytes(c) for c in chunks)
                    writer.write(len(payload).to_bytes(4, "big") + payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    async def close(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
