"""Start and stop the whole system locally: migrations, seed data, every service and the
gateway as ``nameko run`` processes (the broker and the database are
``deploy.infrastructure``'s job).

Used by ``make up`` (``python -m deploy.local up``) and by the test suite, which starts the
same system against its own database and RabbitMQ vhost.

Each service (and the gateway) runs as ``<SERVICE>_PROCESSES`` processes (``PROCESSES`` for
all, default 1): RPCs and events are shared out by the broker (the processes consume the same
queues), the gateway's processes listen on the one port with ``SO_REUSEPORT`` and the kernel
spreads connections over them. Every process gets ``INSTANCE_ID`` (``dossier-2``); the first
process of a service is known here by the service's name, the k-th by ``<service>-<k>``. A
process after the first with a fixed metrics port serves its metrics 100 ports higher per
process (dossier: 9103, 9203, ...), so each can be scraped on its own.

Each process runs at the CPU priority ``<SERVICE>_NICE`` (0-19, as ``nice``): by default 10 for
the router and identity, which work off the dossier log (delivery to the agency, the
applicant's notice) and can wait a little, and 0 for the rest, which answer a caller: on a
machine short of CPU, the kernel gives the waiting caller the processor first.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
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

#: the folder of each launched service's ``config.yml`` (``services/<name>`` when not listed)
CONFIG_FOLDERS = {"gateway": "gateway"}

#: how far apart the metrics ports of one service's processes are
METRICS_PORT_STRIDE = 100


def process_count(name: str, env: dict[str, str] | None = None) -> int:
    """How many processes of ``name`` to run: ``<NAME>_PROCESSES``, else ``PROCESSES``, else 1."""
    env = os.environ if env is None else env
    raw = env.get(f"{name.upper()}_PROCESSES") or env.get("PROCESSES") or "1"
    return _whole_number(f"{name.upper()}_PROCESSES", raw, 1, 64)


#: the CPU priority (``nice``) of the services that consume the log for work nobody waits on
BACKGROUND_NICE = {"router": 10, "identity": 10}


def process_nice(name: str, env: dict[str, str] | None = None) -> int:
    """The CPU priority of ``name``'s processes: ``<NAME>_NICE``, else ``BACKGROUND_NICE``'s, else 0."""
    env = os.environ if env is None else env
    raw = (env.get(f"{name.upper()}_NICE") or "").strip() or str(BACKGROUND_NICE.get(name, 0))
    return _whole_number(f"{name.upper()}_NICE", raw, 0, 19)


def _whole_number(variable: str, raw: str, low: int, high: int) -> int:
    """``raw`` (the value of ``variable``) as a whole number from ``low`` to ``high``, or ValueError."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{variable} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{variable} must be between {low} and {high}, not {value}")
    return value


def instance_key(name: str, number: int) -> str:
    """The launcher's name of a service's ``number``-th process (the first: the service's name)."""
    return name if number == 1 else f"{name}-{number}"


def parse_instance_key(key: str) -> tuple[str, int]:
    """``dossier`` -> (dossier, 1), ``dossier-2`` -> (dossier, 2)."""
    if key in SERVICE_CLASSES or key in STAND_INS:
        return key, 1
    name, _, number = key.rpartition("-")
    if name not in SERVICE_CLASSES or not number.isdigit() or int(number) < 2:
        raise KeyError(f"no such service process: {key!r}")
    return name, int(number)


# Local stand-ins of outside parties run as their own processes (only with LOCAL_ADAPTERS on).
STAND_INS = {
    "vneid": "deploy.vneid",
}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


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


def declare_queues(amqp_uri: str) -> None:
    """Declare the services' event queues before any of them runs; a broker that does not
    answer yet is left to the services (each declares its own queues as it starts)."""
    from deploy.topology import declare_event_queues
    try:
        declare_event_queues(amqp_uri, SERVICE_CLASSES.values())
    except OSError as exc:
        print(f"the event queues were not declared ahead ({exc}); each service declares its own", flush=True)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalSystem:
    """Every service and the gateway as child processes (``counts`` of each; by default from
    ``<SERVICE>_PROCESSES`` / ``PROCESSES`` in ``extra_env`` or the environment)."""

    database_url: str
    amqp_uri: str
    gateway_port: int = 8000
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        merged = {**os.environ, **self.extra_env}
        if _truthy(merged.get("LOCAL_ADAPTERS")) and not merged.get("VNEID_STANDIN_PORT"):
            # a port of this system's own: two systems on one machine (tests, benchmarks) must
            # not both start a stand-in on one port (``make up`` asks for 8090)
            self.extra_env = {**self.extra_env, "VNEID_STANDIN_PORT": str(_unused_port())}
        for name in SERVICE_CLASSES:
            self.counts.setdefault(name, process_count(name, merged))
            process_nice(name, merged)  # a bad value stops the start before any process runs

    def instance_keys(self, name: str | None = None) -> list[str]:
        """The processes this system runs (of one service, or all), first processes first."""
        names = [name] if name else list(SERVICE_CLASSES)
        return [instance_key(n, k) for n in names for k in range(1, self.counts.get(n, 1) + 1)]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self, name: str, number: int = 1) -> dict[str, str]:
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
        env["INSTANCE_ID"] = f"{name}-{number}"
        if number > 1:
            self._spread_metrics_port(env, name, number)
        if _truthy(env.get("LOCAL_ADAPTERS")):
            for key, value in self.vneid_defaults(env).items():
                env.setdefault(key, value)
            for key, value in self.payment_platform_defaults().items():
                env.setdefault(key, value)
        return env

    def payment_platform_defaults(self) -> dict[str, str]:
        """With the local adapters on, the payment service asks the local stand-in platform over
        HTTP, as it would the real one: its merchant API and settlement file on the gateway."""
        stand_in = f"{self.gateway_url}/api/v1/dev/payment-platform"
        return {"PAYMENT_PLATFORM_API_URL": f"{stand_in}/merchant_webapi/api/transaction",
                "PAYMENT_SETTLEMENT_URL": f"{stand_in}/settlements?date={{date}}"}

    def vneid_defaults(self, env: dict[str, str]) -> dict[str, str]:
        """With the local adapters on, identity signs in with VNeID at the local stand-in
        (``deploy.vneid``), which shares these settings; any of them set beforehand wins."""
        port = env.get("VNEID_STANDIN_PORT") or "8090"  # set by __post_init__ when adapters are on
        return {
            "VNEID_STANDIN_PORT": port,
            "VNEID_ISSUER": f"http://127.0.0.1:{port}",
            "VNEID_CLIENT_ID": "portal-local",
            "VNEID_CLIENT_SECRET": "local-vneid-secret",
            "VNEID_REDIRECT_URIS": ",".join(dict.fromkeys(  # the portal's callback (API.md), and on PORTAL_PORT
                f"http://127.0.0.1:{p}/dang-nhap/vneid" for p in ("8080", env.get("PORTAL_PORT") or "8080"))),
            "VNEID_BACKCHANNEL_LOGOUT_URI": f"{self.gateway_url}/api/v1/auth/vneid/backchannel-logout",
        }

    @staticmethod
    def _spread_metrics_port(env: dict[str, str], name: str, number: int) -> None:
        """Give the ``number``-th process its own metrics port when the first has a fixed one."""
        if name == "gateway":
            return  # the gateway serves /metrics on its shared HTTP port
        from portal_common.metrics import DEFAULT_PORTS

        raw = (env.get(f"{name.upper()}_METRICS_PORT") or env.get("METRICS_PORT")
               or str(DEFAULT_PORTS.get(name, 0))).strip()
        if raw.isdigit() and int(raw) > 0:
            env[f"{name.upper()}_METRICS_PORT"] = str(int(raw) + METRICS_PORT_STRIDE * (number - 1))

    def start_one(self, key: str) -> subprocess.Popen:
        """Start one process: ``dossier`` (the service's first) or ``dossier-2``."""
        name, number = parse_instance_key(key)
        if name in STAND_INS:
            cmd = [sys.executable, "-m", STAND_INS[name]]
        else:
            folder = CONFIG_FOLDERS.get(name, f"services/{name}")
            cmd = [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / folder / "config.yml"),
                   SERVICE_CLASSES[name]]
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{key}.log", "ab")  # noqa: SIM115 - owned by the child
        env = self.env(name, number)
        nice = process_nice(name, env) if name in SERVICE_CLASSES else 0
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        if nice:  # before it has loaded its code: the priority is in place before it serves
            with contextlib.suppress(ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
        self.processes[key] = proc
        return proc

    def start(self) -> None:
        """Start every process not running yet (a caller may have started some first), the
        services' event queues declared first (``deploy.topology``)."""
        if not any(p.poll() is None for p in self.processes.values()):
            declare_queues(self.amqp_uri)
        keys = self.instance_keys()
        if _truthy(self.env("gateway").get("LOCAL_ADAPTERS")):
            keys = [*STAND_INS, *keys]  # outside parties' local stand-ins, only with the local adapters
        for key in keys:
            proc = self.processes.get(key)
            if proc is None or proc.poll() is not None:
                self.start_one(key)

    def ready(self) -> bool:
        return self._ready_instance() is not None

    def _ready_instance(self) -> str | None:
        """The gateway process that answered ``/ready`` with 200 (its instance id), else None."""
        try:
            with urllib.request.urlopen(f"{self.gateway_url}/ready", timeout=5) as resp:  # noqa: S310
                if resp.status != 200:
                    return None
                body = json.loads(resp.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError):
            return None
        gateway = (body.get("services") or {}).get("gateway") or {}
        return str(gateway.get("instance") or "gateway")

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until every gateway process has answered ``/ready`` (each one once: the kernel spreads
        connections over them) and so every service answers."""
        wanted = self.counts.get("gateway", 1)
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see its log")
            instance = self._ready_instance()
            if instance is not None:
                seen.add(instance)
                if len(seen) >= wanted:
                    return
                time.sleep(0.05)
                continue
            time.sleep(0.5)
        raise TimeoutError(f"the system was not ready within {timeout:.0f}s")

    def stop_one(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            stop_process(proc, timeout, sig)

    def stop_service(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop every process of one service."""
        for key in [k for k in self.processes if parse_instance_key(k)[0] == name]:
            self.stop_one(key, sig, timeout)

    def stop(self) -> None:
        for name in list(self.processes)[::-1]:
            self.stop_one(name)


def default_settings() -> tuple[str, str, int]:
    return (config.database_url(), config.amqp_uri(), config.env_int("GATEWAY_PORT", 8000))


def start_portal(gateway_url: str, port: int, log_dir: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """The citizen web portal (``python -m portal``) in front of ``gateway_url``; the caller
    stops it with ``stop_process``."""
    env = {**os.environ, "PORTAL_GATEWAY_URL": gateway_url, "PORTAL_PORT": str(port),
           "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    out = subprocess.DEVNULL
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_dir / "portal.log", "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "portal"], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200 (or ``proc`` exits, or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a local URL we built
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """SIGTERM (or ``sig``) the process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
