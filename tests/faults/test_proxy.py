"""The fault-injecting TCP proxy: it forwards, and delays, drops (resetting the connection) and cuts
connections when told, per source address, at run time."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from faults.proxy import ProxyHub
from waiting import wait_until


class Echo:
    """A loopback echo server."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving: a shutdown wakes the accept (closing the socket alone leaves the thread
        blocked in it on Linux, one thread left behind per test)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass


@pytest.fixture
def proxy():
    echo = Echo()
    hub = ProxyHub(seed=3)
    try:
        yield hub.add("echo", "127.0.0.1", ("127.0.0.1", echo.port), {"127.0.0.2": "n2"})
    finally:
        hub.close()
        echo.close()


def connect(proxy, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=(source, 0))
    sock.settimeout(10)
    return sock


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_forwards_both_ways(proxy):
    with connect(proxy) as sock:
        payload = bytes(range(256)) * 1000
        assert roundtrip(sock, payload) == payload
    assert proxy.accepted == 1


def test_delay_holds_every_chunk_back(proxy):
    proxy.set(delay=0.25)
    with connect(proxy) as sock:
        t0 = time.monotonic()
        assert roundtrip(sock, b"ping") == b"ping"
        # the chunk waited out the delay going there and again coming back
        assert time.monotonic() - t0 >= 0.5
    proxy.clear()
    with connect(proxy) as sock:
        assert roundtrip(sock, b"pong") == b"pong"


def test_loss_resets_the_connection(proxy):
    proxy.set(loss=1.0)
    with connect(proxy) as sock:
        sock.sendall(b"lost")
        with pytest.raises(ConnectionResetError):
            if sock.recv(10) == b"":  # an abort may also read as an end of stream
                raise ConnectionResetError
    assert proxy.resets == 1
    proxy.clear()
    with connect(proxy) as sock:
        assert roundtrip(sock, b"kept") == b"kept"


def test_faults_apply_per_source(proxy):
    proxy.set("n2", loss=1.0)
    with connect(proxy, "127.0.0.1") as client:
        assert roundtrip(client, b"client") == b"client"
    with connect(proxy, "127.0.0.2") as n2:
        n2.sendall(b"n2")
        with pytest.raises(ConnectionResetError):
            if n2.recv(10) == b"":
                raise ConnectionResetError
    assert proxy.resets == 1


def test_cut_aborts_open_connections_only(proxy):
    first = connect(proxy)
    second = connect(proxy, "127.0.0.2")
    try:
        assert roundtrip(first, b"a") == b"a" and roundtrip(second, b"b") == b"b"
        assert proxy.cut("n2") == 1
        with pytest.raises(ConnectionResetError):
            if second.recv(10) == b"":
                raise ConnectionResetError
        assert roundtrip(first, b"still") == b"still"
        assert proxy.cut() == 1
        with pytest.raises(ConnectionResetError):
            if first.recv(10) == b"":
                raise ConnectionResetError
    finally:
        first.close()
        second.close()
    with connect(proxy) as again:  # new connections are accepted after a cut
        assert roundtrip(again, b"new") == b"new"


def test_a_reset_from_the_target_resets_the_clients_connection():
    """A node killed with data unread resets its connections; the proxy must pass the reset on (a
    client talking to the node directly would see it), not keep the client's side open and swallow
    what it sends next (the client would wait for answers until its own timeout)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    ready = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        accepted.append(conn)
        ready.set()

    threading.Thread(target=serve, daemon=True).start()
    hub = ProxyHub(seed=3)
    try:
        p = hub.add("target", "127.0.0.1", ("127.0.0.1", server.getsockname()[1]), {})
        sock = connect(p)
        try:
            sock.sendall(b"request the node will never read")
            assert ready.wait(10)
            upstream = accepted[0]
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            upstream.close()  # unread data + linger 0: an RST, as a kill -9 with requests queued
            sock.settimeout(20)  # bounds a hang; the answer comes at once when the reset is passed on
            closed = False
            try:
                for _ in range(100):
                    sock.sendall(b"next request")  # a client pipelining more requests meanwhile
                    if sock.recv(65536) == b"":
                        closed = True
                        break
            except (ConnectionResetError, BrokenPipeError):
                closed = True
            assert closed
        finally:
            sock.close()
    finally:
        hub.close()
        server.close()


def test_the_hub_reports_its_loop_running_late():
    """A loop kept busy (here a call that blocks it 300 ms) runs its lag timer late by at least the
    block less one tick (the timer was armed before the block): ``take_lag`` reports it."""
    hub = ProxyHub(seed=3)
    try:
        hub.take_lag()
        hub.call(lambda: time.sleep(0.3))
        taken: list[dict[str, float]] = []
        wait_until(lambda: taken.append(hub.take_lag()) or max(t["max_ms"] for t in taken) >= 200, 10,
                   message="the blocked loop's lag reported", details=lambda: taken)
        assert all(t["total_ms"] >= t["max_ms"] for t in taken)
    finally:
        hub.close()
