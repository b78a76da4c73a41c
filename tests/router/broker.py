"""A private RabbitMQ node for tests that stop or restart the broker.

The shared broker on 5672 carries everybody's tests, so a fault test never touches it: this
starts a second ``rabbitmq-server`` node with its own node name, AMQP and distribution ports,
data and log directories, Erlang cookie (``HOME``) and an empty plugin list, all under a
temporary directory. Stopping and starting it again keeps its data (durable queues and
persistent messages survive, as on a real restart).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

LIB_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def server_binary() -> str | None:
    """The node script itself (not the distribution's ``su rabbitmq`` wrapper), if installed."""
    if LIB_SERVER.exists():
        return str(LIB_SERVER)
    return shutil.which("rabbitmq-server")


def _free_port() -> int:
    """A free port below the ephemeral range (where the kernel picks the local ports of
    outgoing connections), so that while the node is down for a restart its port is not
    taken by someone's connection or by another test's listener."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateBroker:
    """One throw-away RabbitMQ node under ``base`` (a directory the test owns)."""

    def __init__(self, base: Path):
        binary = server_binary()
        if binary is None:
            raise RuntimeError("rabbitmq-server is not installed")
        self.binary = binary
        self.base = base
        self.port = _free_port()
        self.dist_port = _free_port()
        self.node = f"portal_fault_{uuid.uuid4().hex[:8]}@localhost"
        self.proc: subprocess.Popen | None = None
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("")
        (base / "rabbitmq-env.conf").write_text("")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.base / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    def start(self, timeout: float = 60.0) -> PrivateBroker:
        if _port_open(self.port):  # someone else took the port while this node was down
            raise RuntimeError(f"port {self.port} of the private broker is in use by another process")
        out = open(self.base / "server.out", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([self.binary], env=self._env(), cwd=self.base, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the private broker exited: {self.tail()}")
            if _port_open(self.port):
                self._check_identity()
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the private broker did not open its port within {timeout:.0f}s: {self.tail()}")

    def _check_identity(self) -> None:
        """The node answering on the port is this one (its cluster name is the node's name, with
        the machine's host name after the ``@``)."""
        import amqp

        conn = amqp.Connection(host=f"127.0.0.1:{self.port}", userid="guest", password="guest",
                               connect_timeout=10)
        try:
            conn.connect()
            name = conn.server_properties.get("cluster_name")
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        if str(name).split("@")[0] != self.node.split("@")[0]:
            self.stop()
            raise RuntimeError(f"port {self.port} answers as {name!r}, not as the private node {self.node!r}")

    def tail(self) -> str:
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _beam_pid(self) -> int | None:
        path = self.base / "node.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        return None

    def stop(self, timeout: float = 30.0, crash: bool = False) -> None:
        """Shut the node down cleanly (SIGTERM to the Erlang VM), as a service restart does,
        or with ``crash`` kill it outright (SIGKILL: no goodbye to clients, no flush)."""
        if self.proc is None:
            return
        pid = self._beam_pid()
        sig = signal.SIGKILL if crash else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            if pid:
                os.kill(pid, sig)
            else:
                os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        deadline = time.monotonic() + timeout
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        with contextlib.suppress(FileNotFoundError):
            (self.base / "node.pid").unlink()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
