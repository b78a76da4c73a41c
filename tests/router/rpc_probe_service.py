"""A tiny nameko service for ``test_rpc_broker_restart.py``: RPCs and an ``RpcProxy`` on the
shared reconnecting entrypoints (``portal_common.entrypoints``), no database."""

from __future__ import annotations

import os
import time

import eventlet.patcher

from portal_common.entrypoints import ReconnectingRpcProxy, rpc

_socket = eventlet.patcher.original("socket")  # blocking: the hub does not run meanwhile
_blocking_sleep = eventlet.patcher.original("time").sleep


class RpcProbe:
    name = "rpc_probe"

    myself = ReconnectingRpcProxy("rpc_probe")

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
