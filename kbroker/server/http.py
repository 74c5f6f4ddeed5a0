"""A small HTTP/1.1 server on asyncio streams, shared by the broker's own HTTP endpoints.

The control endpoint (:mod:`kbroker.control.http`, ``kbroker.control.listeners``) and the metrics
endpoint with the web console (:mod:`kbroker.metrics.server`, ``kbroker.http.listeners``) each
run their own :class:`HttpService` on their own ports: one request per connection
(``Connection: close``), ``Content-Length`` bodies only. A subclass answers
:meth:`HttpService.respond`, or :meth:`HttpService.respond_with_headers` when it needs the
request's headers; a response may carry extra headers. Bad requests (malformed, too large) are
answered here with :meth:`HttpService.error`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
           500: "Internal Server Error", 502: "Bad Gateway"}

# status, content type, body; optionally a fourth item: extra response headers (name -> value).
Response = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]


class HttpError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def parse_listener(item: str) -> tuple[str, int]:
    """``host:port`` or ``http://host:port`` (IPv6 in brackets) -> (host, port)."""
    text = item.strip()
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme.lower() != "http":
            raise ValueError(f"{item!r}: only http:// is served")
    text = text.rstrip("/")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{item!r}: expected host:port")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class HttpService:
    """Listeners named by one config key (``key``), each serving :meth:`respond`."""

    key = "http.listeners"  # the config key, named in start-up errors
    name = "HTTP"  # what the log lines call this endpoint

    def __init__(self, listeners: list[str], *, loopback_only: bool = False) -> None:
        self.listeners = listeners
        self.loopback_only = loopback_only
        self.servers: list[asyncio.base_events.Server] = []
        self.bound: list[tuple[str, int]] = []
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def url(self) -> str:
        host, port = self.bound[0]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def check_listeners(self, reserved_ports: set[int]) -> list[tuple[str, str, int]]:
        """(item, host, port) for every listener, or StartupError naming the key and the value."""
        from kbroker.errors import StartupError

        checked = []
        for item in self.listeners:
            try:
                host, port = parse_listener(item)
            except ValueError as exc:
                raise StartupError(f"{self.key}: {exc}") from None
            if self.loopback_only and not is_loopback(host):
                raise StartupError(f"{self.key}: {item!r} is not a loopback address"
                                   f"{self.remote_hint()}")
            if port and port in reserved_ports:
                raise StartupError(f"{self.key}: {item!r} is a Kafka listener's port")
            checked.append((item, host, port))
        return checked

    def remote_hint(self) -> str:
        return ""

    async def start(self, reserved_ports: set[int]) -> None:
        """Bind every listener (all are checked before any is bound)."""
        from kbroker.errors import StartupError

        for item, host, port in self.check_listeners(reserved_ports):
            try:
                server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
            except OSError as exc:
                await self.stop()
                raise StartupError(f"{self.key}: cannot listen on {item}: {exc.strerror}") from None
            self.servers.append(server)
            self.bound.append(server.sockets[0].getsockname()[:2])
        log.info("%s endpoint on %s", self.name, ", ".join(f"{h}:{p}" for h, p in self.bound))

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()

    # -- to override --------------------------------------------------------------------------

    async def respond(self, method: str, target: str, body: bytes) -> Response:
        raise HttpError(404, f"no such endpoint: {target}")

    async def respond_with_headers(self, method: str, target: str, headers: dict[str, str],
                                   body: bytes) -> Response:
        """Like :meth:`respond`, with the request's headers (names lower-cased)."""
        return await self.respond(method, target, body)

    def error(self, status: int, message: str, field: str | None = None) -> Response:
        return status, "text/plain; charset=utf-8", (message + "\n").encode()

    # -- serving ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            peer = writer.get_extra_info("peername")
            if self.loopback_only and (not peer or not is_loopback(str(peer[0]))):
                log.warning("%s request from %s refused: not loopback", self.name, peer)
                await self._write(writer, self.error(403, f"the {self.name} endpoint serves loopback only"))
                return
            try:
                method, target, headers, body = await self._read_request(reader)
                response = await self.respond_with_headers(method, target, headers, body)
            except HttpError as exc:
                response = self.error(exc.status, str(exc), exc.field)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception as exc:
                log.exception("%s request failed", self.name)
                response = self.error(500, f"{type(exc).__name__}: {exc}")
            await self._write(writer, response)
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(400, "request head too large") from None
        if len(head) > MAX_HEADER_BYTES:
            raise HttpError(400, "request head too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "malformed request line")
        method, target = parts[0].upper(), parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise HttpError(411, "chunked bodies are not accepted: send Content-Length")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise HttpError(400, "bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, "body too large")
        body = await reader.readexactly(length) if length else b""
        return method, target, headers, body

    async def _write(self, writer: asyncio.StreamWriter, response: Response) -> None:
        status, content_type, data = response[:3]
        extra = "".join(f"{k}: {v}\r\n" for k, v in (response[3] if len(response) > 3 else {}).items())
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
                f"{extra}Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        if writer.is_closing():
            return  # the client went away while the answer was made (uvloop raises on a write to it)
        try:
            writer.write(head + data)
            await writer.drain()
        except ConnectionError:
            pass
