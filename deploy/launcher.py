"""Start and stop the whole system locally: migrations, seed data, every service and the
gateway as ``nameko run`` processes (the broker and the database are
``deploy.infrastructure``'s job).

Used by ``make up`` (``python -m deploy.local up``) and by the test suite, which starts the
same system against its own database and RabbitMQ vhost.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from portal_common import config
from portal_common.migrations import SERVICES, migrate

ROOT = Path(__file__).resolve().parent.parent

SERVICE_CLASSES = {
    "identity": "services.identity.service:IdentityService",
    "catalog": "services.catalog.service:CatalogService",
    "dossier": "services.dossier.service:DossierService",
    "router": "services.router.service:RouterService",
    "payment": "services.payment.service:PaymentService",
    "gateway": "gateway.service:GatewayService",
}


def migrate_and_seed(dsn: str, seed: bool = True) -> None:
    """Create the database, bring every schema up to date and load seed data where missing."""
    for service, package in SERVICES.items():
        migrate(dsn, service, package)
    if not seed:
        return
    for package in SERVICES.values():
        try:
            module = importlib.import_module(f"{package}.seed")
        except ModuleNotFoundError:
            continue
        module.load(dsn)


@dataclass
class LocalSystem:
    """The four services and the gateway as child processes."""

    database_url: str
    amqp_uri: str
    gateway_port: int = 8000
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.database_url,
            "AMQP_URI": self.amqp_uri,
            "GATEWAY_PORT": str(self.gateway_port),
            "SERVICE_NAME": name,
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": "ignore",
        })
        env.update(self.extra_env)
        return env

    def start_one(self, name: str) -> subprocess.Popen:
        folder = "gateway" if name == "gateway" else f"services/{name}"
        cmd = [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / folder / "config.yml"),
               SERVICE_CLASSES[name]]
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(name), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = proc
        return proc

    def start(self) -> None:
        for name in SERVICE_CLASSES:
            self.start_one(name)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.gateway_url}/ready", timeout=5) as resp:  # noqa: S310
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see its log")
            if self.ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"the system was not ready within {timeout:.0f}s")

    def stop_one(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop(self) -> None:
        for name in list(self.processes)[::-1]:
            self.stop_one(name)


def default_settings() -> tuple[str, str, int]:
    return (config.database_url(), config.amqp_uri(), config.env_int("GATEWAY_PORT", 8000))
