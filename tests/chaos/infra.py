"""The chaos suite's own infrastructure: a private PostgreSQL cluster, a private RabbitMQ node
(``tests/router/broker.py``), a fault proxy in front of each, and the system
(``deploy.launcher.LocalSystem``) wired to them through the proxies.

Nothing here touches the machine's shared PostgreSQL (5432) or RabbitMQ (5672): the cluster
is ``initdb``-ed into a temporary directory and listens on a free port (unix socket inside
that directory), the broker is a node of its own. Both are stopped and their directories
removed by ``close()`` (also registered with ``atexit``).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2

from deploy.launcher import LocalSystem, migrate_and_seed
from tests.chaos.proxy import FaultProxy, free_port
from tests.router.broker import PrivateBroker, server_binary

RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
SERVICES = ("identity", "catalog", "dossier", "router", "gateway")

# What the services run with in the suite: the test suite's settings (tests/conftest.py's
# ``system`` fixture and its environment defaults), plus a router whose retries stay short
# (cap 8 s) but whose patience is still about two minutes, like production's, so a fault of a
# few seconds never turns a delivery dead by configuration; a delivery leased by a router
# that was killed is taken again after 10 s (production: 30 s), so the run settles sooner.
SYSTEM_ENV = {
    "LOCAL_ADAPTERS": "yes",
    "RATE_LOOKUP": "100000", "RATE_DEFAULT": "100000", "RATE_SIGNIN": "100000",
    "RATE_REGISTER": "100000", "RATE_OTP": "100000",
    "TRUSTED_PROXIES": "127.0.0.1",
    "METRICS_PORT": "0",
    "DB_POOL_IDLE_TIMEOUT": "5",
    "DB_POOL_MIN_IDLE": "1",
    "CONSUMER_RETRY_DELAYS": "0.5,1,2,4",
    "DELIVERY_TICK": "0.5",
    "DELIVERY_BACKOFF_BASE": "0.5",
    "DELIVERY_BACKOFF_CAP": "8",
    "DELIVERY_MAX_ATTEMPTS": "20",
    "DELIVERY_LEASE": "10",
    "NOTIFY_TICK": "2",  # identity's timer for applicant SMS whose send failed (production: 30 s)
    "AGENCY_SECRET_CHAOS": "chaos-callback-secret",
}


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory holding initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def missing_binaries() -> str | None:
    """Why the suite cannot run here (None when it can)."""
    if pg_bindir() is None:
        return "initdb is not installed (/usr/lib/postgresql/*/bin/initdb): no private PostgreSQL cluster"
    if server_binary() is None:
        return "rabbitmq-server is not installed: no private RabbitMQ node"
    return None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster: trust auth, its own port, its socket in its directory.

    PostgreSQL refuses to run as root: when we are root the binaries run as the ``postgres``
    system user (``runuser``) on a directory under /tmp that user owns.
    """

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("initdb is not installed")
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="portal-chaos-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        self.user: str | None = None
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            for path in (self.base, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.base, 0o755)

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): "
                               f"{result.stderr[-1500:]}{result.stdout[-500:]}\n{self.tail()}")
        return result

    def init(self) -> PrivatePostgres:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# portal chaos suite\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 300\n"
                "fsync = off\n"  # the OS never crashes here; kill -9 and restarts still test recovery
                "full_page_writes = off\n"
                "logging_collector = off\n"
                "log_min_messages = warning\n")
        return self

    def start(self, timeout: float = 60.0) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", str(int(timeout)), "start", timeout=timeout + 30)
        self.wait_ready(timeout)

    def restart(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """``pg_ctl restart -m fast``: every connection is terminated, the server comes back."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", mode, "-w",
                  "-t", str(int(timeout)), "restart", timeout=timeout + 30)
        self.wait_ready(timeout)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        result = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                           "-t", str(int(timeout)), "stop", timeout=timeout + 30, check=False)
        if result.returncode != 0 and mode != "immediate":
            self.stop("immediate", timeout)

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def kill9_and_start(self, timeout: float = 60.0) -> None:
        """SIGKILL the postmaster (a crash: no shutdown checkpoint, backends orphaned), wait for
        its backends to notice and exit, then start it again (crash recovery)."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError("the private PostgreSQL is not running")
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in [pid, *children]):
            time.sleep(0.1)
        while True:
            result = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                               "-t", str(int(timeout)), "start", timeout=timeout + 30, check=False)
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start after kill -9: {result.stderr}\n{self.tail()}")
            time.sleep(0.5)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                psycopg2.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.2)
        raise RuntimeError(f"the private PostgreSQL did not accept connections within {timeout:.0f}s\n{self.tail()}")

    def dsn(self, database: str, port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> None:
        conn = psycopg2.connect(self.dsn("postgres"), connect_timeout=10)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        finally:
            conn.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the postmaster's backends), from /proc."""
    found = []
    for entry in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(entry).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(Path(entry).parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


class Broker:
    """``PrivateBroker`` (tests/router/broker.py) plus vhosts, through the node's own rabbitmqctl."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="portal-chaos-mq-"))
        self.node = PrivateBroker(self.base)

    @property
    def port(self) -> int:
        return self.node.port

    def start(self) -> Broker:
        self.node.start(timeout=90)
        return self

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        binary = str(RABBITMQCTL) if RABBITMQCTL.exists() else "rabbitmqctl"
        result = subprocess.run([binary, "-q", "-n", self.node.node, *args], env=self.node._env(),
                                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr[-800:]}")
        return result.stdout

    def add_vhost(self, vhost: str) -> None:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def uri(self, vhost: str, port: int | None = None) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port or self.port}/{vhost}"

    def restart(self, crash: bool = False) -> None:
        """Stop the node (clean SIGTERM, or SIGKILL with ``crash``) and start it on the same data."""
        self.node.stop(crash=crash)
        self.node.start(timeout=90)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.node.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Infrastructure:
    """The private cluster and broker, shared by the scenarios of one run; a database made
    from a migrated and seeded template, and a vhost, for each system started on them."""

    TEMPLATE = "portal_chaos_template"

    def __init__(self) -> None:
        self.pg = PrivatePostgres()
        self.broker = Broker()
        self._templated = False
        atexit.register(self.close)

    def start(self) -> Infrastructure:
        self.pg.init().start()
        self.broker.start()
        return self

    def new_database(self) -> str:
        """A fresh, migrated and seeded database (copied from a template made once)."""
        if not self._templated:
            self.pg.create_database(self.TEMPLATE)
            migrate_and_seed(self.pg.dsn(self.TEMPLATE))
            self._templated = True
        name = f"portal_chaos_{uuid.uuid4().hex[:8]}"
        self.pg.create_database(name, template=self.TEMPLATE)
        return name

    def new_vhost(self) -> str:
        vhost = f"chaos_{uuid.uuid4().hex[:8]}"
        self.broker.add_vhost(vhost)
        return vhost

    def close(self) -> None:
        self.broker.close()
        self.pg.close()


class Environment:
    """One system under test: its database and vhost, the two fault proxies, the services.

    The services get ``DATABASE_URL`` and ``AMQP_URI`` pointing at the proxies; the suite
    itself (invariant checks, the agency's recorder) talks to the servers directly
    (``direct_dsn``, ``direct_amqp``), so a proxy fault never blinds the observer.
    """

    def __init__(self, infra: Infrastructure, log_dir: Path, extra_env: dict[str, str] | None = None):
        self.infra = infra
        self.log_dir = log_dir
        self.database = infra.new_database()
        self.vhost = infra.new_vhost()
        self.pg_proxy = FaultProxy(infra.pg.port, name="postgres").start()
        self.mq_proxy = FaultProxy(infra.broker.port, name="rabbitmq").start()
        self.direct_dsn = infra.pg.dsn(self.database)
        self.direct_amqp = infra.broker.uri(self.vhost)
        self.system = LocalSystem(infra.pg.dsn(self.database, self.pg_proxy.port),
                                  infra.broker.uri(self.vhost, self.mq_proxy.port),
                                  free_port(), log_dir=log_dir, extra_env={**SYSTEM_ENV, **(extra_env or {})})

    @property
    def gateway_url(self) -> str:
        return self.system.gateway_url

    def start(self, timeout: float = 150.0) -> Environment:
        self.system.start()
        try:
            self.system.wait_ready(timeout=timeout)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"the system did not start: {exc}\n{self.log_tails()}") from exc
        return self

    def restart_service(self, name: str, sig: int = signal.SIGKILL, down_s: float = 1.0,
                        timeout: float = 90.0) -> None:
        """Kill one service (SIGKILL by default: no clean shutdown, nothing acked), leave it
        down ``down_s`` seconds, start it again and wait until the gateway reports ready."""
        self.system.stop_one(name, sig)
        time.sleep(down_s)
        self.system.start_one(name)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until ``/ready`` answers 200 (bounded); a child that died is an error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.system.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.log_tails([name])}")
            if self.system.ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"the system was not ready {timeout:.0f}s after the fault\n{self.log_tails()}")

    def dead_services(self) -> list[str]:
        return [n for n, p in self.system.processes.items() if p.poll() is not None]

    def log_tails(self, names: tuple[str, ...] | list[str] = SERVICES, chars: int = 1500) -> str:
        out = []
        for name in names:
            path = self.log_dir / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}.log\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def stop(self) -> None:
        self.system.stop()
        self.pg_proxy.stop()
        self.mq_proxy.stop()
