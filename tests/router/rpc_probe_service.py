"""A tiny nameko service for ``test_rpc_broker_restart.py``: RPCs and an ``RpcProxy`` on the
shared reconnecting entrypoints (``portal_common.entrypoints``), no database."""

from __future__ import annotations

import os
import time

import eventlet.patcher
from nameko.extensions import DependencyProvider

from portal_common.entrypoints import ReconnectingQueueConsumer, ReconnectingRpcProxy, rpc

_socket = eventlet.patcher.original("socket")  # blocking: the hub does not run meanwhile
_blocking_sleep = eventlet.patcher.original("time").sleep


class ReconnectCounter(DependencyProvider):
    """Counts the consumer's reconnections, as a cache fed by broadcast events hears of them."""

    queue_consumer = ReconnectingQueueConsumer()

    def setup(self) -> None:
        self.count = 0
        self.queue_consumer.add_reconnect_listener(self._bump)

    def _bump(self) -> None:
        self.count += 1

    def get_dependency(self, worker_ctx):
        return self


class RpcProbe:
    name = "rpc_probe"

    myself = ReconnectingRpcProxy("rpc_probe")
    reconnects = ReconnectCounter()

    @rpc
    def reconnections(self) -> int:
        return self.reconnects.count

    @rpc
    def pid(self) -> int:
        return os.getpid()

    @rpc
    def pid_through_proxy(self) -> int:
        return self.myself.pid()

    @rpc
    def hold(self, marker: str, port: int, timeout: float = 60.0) -> int:
        """The first call notes itself in ``marker`` and returns only once the broker on ``port``
        is gone, without yielding to the hub meanwhile: its reply then meets a broker that is
        away. A call that comes again (the broker requeued it) returns at once."""
        first = not os.path.exists(marker)
        with open(marker, "a") as out:
            out.write("called\n")
        deadline = time.monotonic() + timeout
        while first and _broker_up(port) and time.monotonic() < deadline:
            _blocking_sleep(0.05)
        return os.getpid()


def _broker_up(port: int) -> bool:
    sock = _socket.socket()
    sock.settimeout(0.5)
    try:
        sock.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()
