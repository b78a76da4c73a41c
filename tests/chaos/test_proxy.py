"""The fault proxy itself (tests/chaos/proxy.py), against a local echo server: it forwards,
``slow`` delays, ``cut`` closes open connections and refuses new ones, ``restore`` undoes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tests.chaos.proxy import FaultProxy

pytestmark = pytest.mark.chaos


@pytest.fixture
def echo():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def roundtrip(port: int, payload: bytes = b"ping", timeout: float = 5.0) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        started = time.monotonic()
        s.sendall(payload)
        got = s.recv(4096)
        return got, time.monotonic() - started


def test_forwards_slows_cuts_and_restores(echo):
    with FaultProxy(echo) as proxy:
        assert roundtrip(proxy.port)[0] == b"ping"

        proxy.slow(150)
        got, took = roundtrip(proxy.port)
        assert got == b"ping" and took >= 0.29  # one chunk each way
        proxy.restore()
        assert roundtrip(proxy.port)[1] < 0.2

        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.sendall(b"x")
        assert held.recv(16) == b"x"
        assert proxy.open_connections == 1
        assert proxy.cut() == 1
        with contextlib.suppress(ConnectionResetError):
            assert held.recv(16) == b""  # the open connection was closed under the client
        held.close()
        with pytest.raises(OSError):  # and a new one is refused
            roundtrip(proxy.port, timeout=1)

        proxy.restore()
        assert roundtrip(proxy.port)[0] == b"ping"
        assert proxy.stats()["cuts"] == 1


def test_holds_new_connections_until_released(echo):
    with FaultProxy(echo) as proxy:
        proxy.hold_new()
        first = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        first.sendall(b"held")
        first.settimeout(0.5)
        with pytest.raises(TimeoutError):  # read by the proxy, not forwarded
            first.recv(16)
        assert proxy.held == 1

        proxy.pass_new()  # later connections go through; the first stays held
        assert roundtrip(proxy.port)[0] == b"ping"
        with pytest.raises(TimeoutError):
            first.recv(16)

        assert proxy.release() == 1 and proxy.held == 0
        first.settimeout(5)
        assert first.recv(16) == b"held"  # what it sent while held, forwarded once released
        first.close()
