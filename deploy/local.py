"""``python -m deploy.local up``: the whole system on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from deploy.infrastructure import ensure_infrastructure
from deploy.launcher import (
    SERVICE_CLASSES,
    LocalSystem,
    default_settings,
    migrate_and_seed,
    start_portal,
    stop_process,
    wait_http,
)
from deploy.topology import declare_event_queues


def delivery_key_env(directory: Path) -> dict[str, str]:
    """The Ed25519 key that signs deliveries: the operator's (``AGENCY_SECRET_DELIVERY_KEY`` or
    ``AGENCY_SECRETS_DIR``) if set, else one generated once into ``directory`` (mode 0600)."""
    if os.environ.get("AGENCY_SECRET_DELIVERY_KEY") or os.environ.get("AGENCY_SECRETS_DIR"):
        return {}
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "AGENCY_SECRET_DELIVERY_KEY"
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    return {"AGENCY_SECRETS_DIR": str(directory.resolve())}


def up() -> int:
    dsn, amqp, port = default_settings()
    ensure_infrastructure(dsn, amqp)
    print("migrating and seeding ...", flush=True)
    migrate_and_seed(dsn)
    # A local system runs the local stand-ins of the carrier, BHXH and SMS registries and their
    # /api/v1/dev endpoints, so a newcomer can register and sign in at once; LOCAL_ADAPTERS=no
    # turns them off.
    local = os.environ.get("LOCAL_ADAPTERS", "yes")
    extra = {"LOCAL_ADAPTERS": local}
    if local.lower() in ("1", "yes", "true", "on"):
        # a local back office on this machine may subscribe callbacks on 127.0.0.1
        extra["CALLBACK_ALLOW_LOOPBACK"] = os.environ.get("CALLBACK_ALLOW_LOOPBACK", "yes")
        extra["VNEID_STANDIN_PORT"] = os.environ.get("VNEID_STANDIN_PORT") or "8090"  # the documented one
    extra.update(delivery_key_env(Path(".run/secrets")))
    system = LocalSystem(dsn, amqp, port, log_dir=Path(".run/logs"), extra_env=extra)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    system.start()
    # The citizen web portal: a front end of the gateway like any other (PORTAL_PORT, 8080).
    portal_port = int(os.environ.get("PORTAL_PORT", "8080"))
    portal = None
    try:
        system.wait_ready()
        # The address VNeID sends citizens back to and receipts' QR codes print (one spelling,
        # whether the browser says localhost or 127.0.0.1).
        # Sessions in the system's database: kept over a restart of the portal.
        portal_env = {"PORTAL_PUBLIC_URL": os.environ.get("PORTAL_PUBLIC_URL", f"http://127.0.0.1:{portal_port}"),
                      "PORTAL_SESSION_DATABASE_URL": os.environ.get("PORTAL_SESSION_DATABASE_URL", dsn)}
        portal = start_portal(system.gateway_url, portal_port, log_dir=Path(".run/logs"), extra_env=portal_env)
        wait_http(f"http://127.0.0.1:{portal_port}/health", portal)
        print(f"\nThe portal is up: gateway at {system.gateway_url}"
              f"  (docs: {system.gateway_url}/docs, events: {system.gateway_url}/docs/events)")
        print("Processes: " + ", ".join(f"{name} x{n}" for name, n in system.counts.items())
              + "  (<SERVICE>_PROCESSES or PROCESSES to change)")
        print(f"Citizen web portal at http://127.0.0.1:{portal_port}/  (one-stop desk: /mot-cua/)")
        if "VNEID_STANDIN_PORT" in extra:
            print(f"VNeID stand-in at http://127.0.0.1:{extra['VNEID_STANDIN_PORT']}/  (test identities: "
                  f"POST {system.gateway_url}/api/v1/dev/vneid-identities)")
        print("Logs in .run/logs/. Press Ctrl-C to stop.", flush=True)
        while not stopping:
            for name, proc in list(system.processes.items()):
                if proc.poll() is not None:
                    print(f"{name} exited ({proc.returncode}); restarting", flush=True)
                    system.start_one(name)
            if portal.poll() is not None:
                print(f"portal exited ({portal.returncode}); restarting", flush=True)
                portal = start_portal(system.gateway_url, portal_port, log_dir=Path(".run/logs"),
                                      extra_env=portal_env)
            time.sleep(1)
    except (RuntimeError, TimeoutError) as exc:
        print(f"could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping ...", flush=True)
        if portal is not None:
            stop_process(portal)
        system.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local")
    parser.add_argument("command", choices=["up", "migrate"])
    args = parser.parse_args()
    if args.command == "migrate":
        dsn, amqp, _ = default_settings()
        ensure_infrastructure(dsn, amqp)
        # the queues first: a service that starts meanwhile publishes into them (deploy/topology.py)
        declare_event_queues(amqp, SERVICE_CLASSES.values())
        migrate_and_seed(dsn)
        return 0
    return up()


if __name__ == "__main__":
    sys.exit(main())
