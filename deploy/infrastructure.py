"""PostgreSQL and RabbitMQ on this machine: start local installs that are stopped, and on a
Debian or Ubuntu machine install them first when they are missing, so that ``make up`` and
``make test`` are the only two commands a newcomer runs.

Installing needs ``apt-get`` and root rights (or ``sudo``); it is announced before it runs,
and ``PORTAL_AUTO_INSTALL=no`` turns it off. Anywhere else, a missing server ends the run
with a message that says what to install. A server that answers is never touched, and an
existing PostgreSQL's configuration never changed: only a cluster installed here gets the
password-less local access the default ``DATABASE_URL`` expects.

The decisions are pure functions of what was found (``Machine``), so tests can check which
commands would run without running any.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psycopg2.extensions

PACKAGES = {"PostgreSQL": "postgresql", "RabbitMQ": "rabbitmq-server"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
PG_ETC = Path("/etc/postgresql")
# What the default DATABASE_URL (``postgres`` over TCP, no password) needs of a fresh cluster,
# whose pg_hba.conf asks for a password on TCP; first match wins, so these go on top.
TRUST_LINES = ("host all all 127.0.0.1/32 trust", "host all all ::1/128 trust")
_SYSTEM_PATH = os.pathsep.join((os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"))
OPT_OUT = "PORTAL_AUTO_INSTALL"


@dataclass(frozen=True)
class Machine:
    """What this machine offers, as found at start-up."""

    postgres_versions: tuple[str, ...]  # clusters' versions under /etc/postgresql, oldest first
    pg_ctlcluster: bool
    rabbitmq_server: bool
    apt_get: bool
    root: bool
    sudo: bool  # usable without a password, or able to ask for one on this terminal
    auto_install: bool  # PORTAL_AUTO_INSTALL is not "no"

    @property
    def postgres_installed(self) -> bool:
        return bool(self.postgres_versions) and self.pg_ctlcluster


def privileges(machine: Machine) -> list[str] | None:
    """The prefix that runs a command as root: none for root, ``sudo``, or None (cannot)."""
    if machine.root:
        return []
    if machine.sudo:
        return ["sudo"]
    return None


def missing_servers(machine: Machine, postgres_down: bool, rabbitmq_down: bool) -> list[str]:
    """The servers to install: local ones that do not answer and are not installed."""
    missing = []
    if postgres_down and not machine.postgres_installed:
        missing.append("PostgreSQL")
    if rabbitmq_down and not machine.rabbitmq_server:
        missing.append("RabbitMQ")
    return missing


def install_refusal(machine: Machine) -> str | None:
    """Why the missing servers cannot be installed here, or None when they can."""
    if not machine.auto_install:
        return f"{OPT_OUT}=no"
    if not machine.apt_get:
        return "this machine has no apt-get"
    if privileges(machine) is None:
        return "installing needs root rights or sudo"
    return None


def install_commands(machine: Machine, missing: list[str]) -> list[list[str]]:
    """The apt-get commands that install ``missing``; none when nothing is missing or
    ``install_refusal`` says no."""
    prefix = privileges(machine)
    if not missing or install_refusal(machine) or prefix is None:
        return []
    packages = [PACKAGES[name] for name in missing]
    apt = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    return [[*apt, "update", "-q"], [*apt, "install", "-y", "-q", "--no-install-recommends", *packages]]


def start_commands(machine: Machine, postgres_down: bool, rabbitmq_down: bool) -> list[list[str]]:
    """The commands that start installed servers that do not answer (the newest cluster)."""
    prefix = privileges(machine) or []
    commands = []
    if postgres_down and machine.postgres_installed:
        commands.append([*prefix, "pg_ctlcluster", "--skip-systemctl-redirect", machine.postgres_versions[-1],
                         "main", "start"])
    if rabbitmq_down and machine.rabbitmq_server:
        commands.append([*prefix, "rabbitmq-server", "-detached"])
    return commands


def needs_trust_lines(hba: str) -> bool:
    """Whether a pg_hba.conf lacks the local TCP trust the default ``DATABASE_URL`` needs."""
    rules = {" ".join(line.split()) for line in hba.splitlines() if line.strip() and not line.lstrip().startswith("#")}
    return not set(TRUST_LINES) <= rules


def trust_commands(machine: Machine, version: str) -> list[list[str]]:
    """Put ``TRUST_LINES`` on top of a freshly installed cluster's pg_hba.conf and reload it."""
    prefix = privileges(machine) or []
    hba = str(PG_ETC / version / "main" / "pg_hba.conf")
    inserts = [arg for line in TRUST_LINES for arg in ("-e", f"1i {line}")]
    return [[*prefix, "sed", "-i", *inserts, hba],
            [*prefix, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "reload"]]


# -- what this machine has ---------------------------------------------------------------


def _which(name: str) -> bool:
    return shutil.which(name, path=_SYSTEM_PATH) is not None


def _sudo_usable() -> bool:
    if not _which("sudo"):
        return False
    if sys.stdin.isatty():
        return True
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        return subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    return False


def inspect_machine() -> Machine:
    versions = tuple(sorted(os.listdir(PG_ETC), key=_version_key)) if PG_ETC.is_dir() else ()
    root = os.geteuid() == 0
    return Machine(
        postgres_versions=versions, pg_ctlcluster=_which("pg_ctlcluster"),
        rabbitmq_server=_which("rabbitmq-server"), apt_get=_which("apt-get"), root=root,
        sudo=not root and _sudo_usable(),
        auto_install=os.environ.get(OPT_OUT, "yes").strip().lower() not in ("no", "0", "false", "off"),
    )


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


# -- doing it --------------------------------------------------------------------------------


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def pg_endpoint(dsn: str) -> tuple[str, int]:
    params = psycopg2.extensions.parse_dsn(dsn)
    return params.get("host", "127.0.0.1"), int(params.get("port", 5432))


def amqp_endpoint(uri: str) -> tuple[str, int]:
    parsed = urlparse(uri)
    return parsed.hostname or "127.0.0.1", parsed.port or 5672


def _run(command: list[str]) -> bool:
    env = dict(os.environ, PATH=_SYSTEM_PATH)
    return subprocess.run(command, check=False, env=env).returncode == 0


def _install(machine: Machine, missing: list[str]) -> Machine:
    """Install ``missing`` (announced first), configure a new PostgreSQL, and return the
    machine as it is afterwards."""
    commands = install_commands(machine, missing)
    print(f"{' and '.join(missing)} not installed: installing {' '.join(PACKAGES[m] for m in missing)} "
          f"with apt-get ({OPT_OUT}=no turns this off):", flush=True)
    for command in commands:
        print("  $ " + " ".join(command), flush=True)
        if not _run(command):
            raise SystemExit(f"`{' '.join(command)}` failed; install {' and '.join(missing)} yourself, or set "
                             f"DATABASE_URL / AMQP_URI to servers you have.")
    after = inspect_machine()
    if "PostgreSQL" in missing and after.postgres_installed:
        version = after.postgres_versions[-1]
        hba = PG_ETC / version / "main" / "pg_hba.conf"
        with contextlib.suppress(OSError):
            if not needs_trust_lines(hba.read_text()):
                return after
        print(f"letting local connections into the new PostgreSQL {version} without a password "
              "(what the default DATABASE_URL expects):", flush=True)
        for command in trust_commands(after, version):
            print("  $ " + " ".join(command), flush=True)
            _run(command)
    return after


def ensure_infrastructure(dsn: str, amqp_uri: str, wait_s: float = 60.0) -> None:
    """Make sure PostgreSQL and RabbitMQ answer: install local ones that are missing (where
    this machine can), start local installs that are stopped, or say what to do."""
    pg, mq = pg_endpoint(dsn), amqp_endpoint(amqp_uri)
    pg_down = not port_open(*pg) and pg[0] in LOCAL_HOSTS
    mq_down = not port_open(*mq) and mq[0] in LOCAL_HOSTS
    if pg_down or mq_down:
        machine = inspect_machine()
        missing = missing_servers(machine, pg_down, mq_down)
        if missing and install_refusal(machine) is None:
            machine = _install(machine, missing)
        for command in start_commands(machine, pg_down and not port_open(*pg), mq_down and not port_open(*mq)):
            print(f"starting {'PostgreSQL' if 'pg_ctlcluster' in command else 'RabbitMQ'}: {' '.join(command)}",
                  flush=True)
            _run(command)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if port_open(*pg) and port_open(*mq):
            return
        time.sleep(0.5)
    missing = [name for name, ep in (("PostgreSQL", pg), ("RabbitMQ", mq)) if not port_open(*ep)]
    where = " and ".join(f"{name} at {ep[0]}:{ep[1]}" for name, ep in (("PostgreSQL", pg), ("RabbitMQ", mq))
                         if name in missing)
    refusal = install_refusal(inspect_machine())
    raise SystemExit(
        f"{where} not answering. Install and start them (Debian: apt-get install postgresql rabbitmq-server"
        f"{'' if refusal is None else f'; not done here: {refusal}'}), or set DATABASE_URL / AMQP_URI, "
        "or run `docker compose up` if you have Docker."
    )
