"""A TCP fault proxy: the services reach PostgreSQL and RabbitMQ only through one of these,
so the suite can break the network between them without touching the servers.

``FaultProxy(target_port).start()`` listens on ``127.0.0.1:<free port>`` (``.port``) and
forwards each connection to ``127.0.0.1:<target_port>`` with two pump threads. Controls:

- ``cut()``: every open connection is closed at once (both sides see a reset or an end of
  file, as when a server or a link dies) and the listening socket is closed, so new
  connections are refused (ECONNREFUSED) until ``restore()`` listens again on the same port;
- ``slow(ms)``: every chunk forwarded, either way, waits ``ms`` milliseconds first;
- ``hold_new()``: connections accepted from now on are held: the proxy reads what either
  side sends but forwards nothing (a server that takes a connection and never answers),
  until ``release()``; ``pass_new()`` lets later connections through and keeps those held;
- ``restore()``: undo ``cut()`` and ``slow()``.

Threads are daemons (a forgotten proxy never keeps the process alive); a pump blocks in
``recv``/``sendall`` until ``cut()`` or ``stop()`` shuts its sockets down, which wakes it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 65536


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied connection: the client's socket and ours to the target."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closed = False
        self._lock = threading.Lock()
        self.gate = threading.Event()  # set: forwarding; clear: held
        self.gate.set()

    def start(self) -> None:
        for src, dst in ((self.client, self.upstream), (self.upstream, self.client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True,
                             name=f"proxy-{self.proxy.port}-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed:
                data = src.recv(CHUNK)
                if not data:
                    break
                while not self.gate.wait(0.2):
                    if self.closed:
                        return
                delay = self.proxy.delay_s
                if delay > 0:
                    time.sleep(delay)
                if self.closed:
                    break
                dst.sendall(data)
                self.proxy.bytes_forwarded += len(data)
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        _close(self.client)
        _close(self.upstream)
        self.proxy._forget(self)


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", name: str = "proxy",
                 connect_timeout_s: float = 5.0):
        self.target = (target_host, target_port)
        self.name = name
        self.port = free_port()
        self.connect_timeout_s = connect_timeout_s
        self.delay_s = 0.0
        self.cut_active = False
        self.accepted = 0
        self.refused = 0
        self.cuts = 0
        self.bytes_forwarded = 0
        self.holding = False
        self._held: list[_Link] = []
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"proxy-{self.name}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._close_listener()
        self._close_links()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------

    def cut(self) -> int:
        """Close every open connection and refuse new ones until ``restore()``; returns how
        many connections were cut."""
        with self._lock:
            self.cut_active = True
            self.cuts += 1
        self._close_listener()
        return self._close_links()

    def slow(self, ms: float) -> None:
        """Delay every forwarded chunk by ``ms`` milliseconds (both directions)."""
        self.delay_s = max(0.0, ms / 1000.0)

    def hold_new(self) -> None:
        """Hold every connection accepted from now on: nothing forwarded until ``release()``."""
        self.holding = True

    def pass_new(self) -> None:
        """Forward the connections accepted from now on; those held stay held."""
        self.holding = False

    @property
    def held(self) -> int:
        """How many connections are held now."""
        with self._lock:
            return sum(1 for link in self._held if not link.closed)

    def release(self) -> int:
        """Forward again on every held connection, and on those accepted later; returns how
        many were held."""
        self.holding = False
        with self._lock:
            held, self._held = self._held, []
        for link in held:
            link.gate.set()
        return len(held)

    def restore(self) -> None:
        self.delay_s = 0.0
        with self._lock:
            was_cut, self.cut_active = self.cut_active, False
        if was_cut and not self._stopped.is_set():
            self._listen()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    def stats(self) -> dict[str, int]:
        return {"accepted": self.accepted, "refused": self.refused, "cuts": self.cuts,
                "open": self.open_connections, "bytes": self.bytes_forwarded}

    # -- internals -------------------------------------------------------------------------

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                sock.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(0.1)
        sock.listen(256)
        sock.settimeout(0.2)
        with self._lock:
            self._listener = sock

    def _close_listener(self) -> None:
        with self._lock:
            sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _close_links(self) -> int:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        return len(links)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed under us by cut()/stop()
                time.sleep(0.01)
                continue
            if self.cut_active:
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout_s)
            except OSError:
                self.refused += 1  # the target itself is down: the client sees its connection closed
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)  # blocking: cut()'s shutdown wakes a blocked recv or send
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, upstream)
            with self._lock:
                if self.cut_active:
                    link.closed = True
                else:
                    self._links.add(link)
                    if self.holding:
                        link.gate.clear()
                        self._held.append(link)
            if link.closed:
                _close(client)
                _close(upstream)
                continue
            self.accepted += 1
            link.start()
