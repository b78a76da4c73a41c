"""Settings read from environment variables, with defaults that work on a developer machine.

Every value can be overridden per service by prefixing the variable with the service's name
(``DOSSIER_DATABASE_URL`` beats ``DATABASE_URL``), so one host can run each service against
its own database while a laptop runs them all against one.
"""

from __future__ import annotations

import os

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/portal"


def env(name: str, default: str | None = None, service: str | None = None) -> str | None:
    """Read ``<SERVICE>_<NAME>`` first, then ``<NAME>``, then the default."""
    if service:
        value = os.environ.get(f"{service.upper()}_{name}")
        if value not in (None, ""):
            return value
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_int(name: str, default: int, service: str | None = None) -> int:
    return int(env(name, str(default), service) or default)


def env_float(name: str, default: float, service: str | None = None) -> float:
    return float(env(name, str(default), service) or default)


def env_bool(name: str, default: bool, service: str | None = None) -> bool:
    raw = env(name, None, service)
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def amqp_uri(service: str | None = None) -> str:
    return env("AMQP_URI", DEFAULT_AMQP_URI, service) or DEFAULT_AMQP_URI


def database_url(service: str | None = None) -> str:
    return env("DATABASE_URL", DEFAULT_DATABASE_URL, service) or DEFAULT_DATABASE_URL


def instance_id() -> str:
    """This process's name among its service's processes: ``INSTANCE_ID`` (the launcher sets
    ``dossier-2``, Kubernetes the pod's name), else host and pid."""
    import socket

    return os.environ.get("INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}"
