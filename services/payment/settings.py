"""The payment service's configuration (environment variables, safe local defaults).

The merchant secret signs what we send the platform and checks what it sends us. It is named
``PAYMENT_MERCHANT_SECRET`` and read like the router's agency secrets
(``portal_common.secrets``): with ``PAYMENT_SECRETS_DIR`` set, the file of that name in the
folder wins over the environment variable, and is read again whenever it changes, so a
mounted secret rotates without a restart. ``PAYMENT_MERCHANT_SECRET_PREVIOUS`` (a file or a
variable too) keeps the old one accepted on notifications while the platform switches; we
sign with the current one only. Neither is ever logged. With ``LOCAL_ADAPTERS`` on and no
secret set, a fixed local secret is used with the local stand-in platform.
"""

from __future__ import annotations

import logging
import threading

from portal_common import config
from portal_common.secrets import SecretStore

SERVICE = "payment"
LOCAL_SECRET = "local-payment-platform-secret"  # the local stand-in's, never a real one
MERCHANT_SECRET = "PAYMENT_MERCHANT_SECRET"
_SECRET_NAMES = r"PAYMENT_MERCHANT_SECRET(_PREVIOUS)?"
_stores: dict[str | None, SecretStore] = {}
_stores_lock = threading.Lock()


def local_adapters() -> bool:
    return config.env_bool("LOCAL_ADAPTERS", False, SERVICE)


def secret_store() -> SecretStore:
    """The store of the merchant secrets, for the folder ``PAYMENT_SECRETS_DIR`` names now
    (one store per folder, so its cache of file contents lives as long as the process)."""
    directory = config.env("PAYMENT_SECRETS_DIR", None, SERVICE)
    store = _stores.get(directory)
    if store is None:
        with _stores_lock:
            store = _stores.setdefault(directory, SecretStore(
                directory, _SECRET_NAMES, env_service=SERVICE, label=SERVICE,
                logger=logging.getLogger(__name__)))
    return store


def merchant_secrets() -> tuple[str, ...]:
    """(current, previous?) secrets, read afresh (a changed file counts at once); empty when no
    current one is configured (payments are then unavailable). The first one signs."""
    current, previous = secret_store().pair(MERCHANT_SECRET)
    current = current or (LOCAL_SECRET if local_adapters() else None)
    if not current:
        return ()
    return (current, previous) if previous and previous != current else (current,)


def merchant_code() -> str:
    return config.env("PAYMENT_MERCHANT_CODE", "PORTAL01", SERVICE) or "PORTAL01"


def gateway_url() -> str:
    port = config.env_int("GATEWAY_PORT", 8000, SERVICE)
    return config.env("PAYMENT_PUBLIC_URL", None, SERVICE) or f"http://127.0.0.1:{port}"


def platform_url() -> str:
    """Where the browser pays: the platform's pay page (the local stand-in's by default)."""
    return (config.env("PAYMENT_PLATFORM_URL", None, SERVICE)
            or f"{gateway_url()}/api/v1/dev/payment-platform/pay")


def notify_url() -> str:
    """Where the (local) platform sends its notifications: the gateway's notify endpoint."""
    return config.env("PAYMENT_NOTIFY_URL", None, SERVICE) or f"{gateway_url()}/api/v1/payments/notify"


def query_after_s() -> float:
    """A payment pending this long is asked about at the platform."""
    return config.env_float("PAYMENT_QUERY_AFTER", 900.0, SERVICE)


TICK_S = config.env_float("PAYMENT_TICK", 1.0, SERVICE)


def platform_api_url() -> str | None:
    """The platform's merchant API (``querydr``, ``refund``); when set, the payment service asks
    the platform over HTTP (the local stand-in's too) instead of reading the stand-in's tables."""
    return config.env("PAYMENT_PLATFORM_API_URL", None, SERVICE) or None


def settlement_url() -> str | None:
    """Where a day's settlement file is fetched, ``{date}`` standing for YYYY-MM-DD."""
    return config.env("PAYMENT_SETTLEMENT_URL", None, SERVICE) or None


def platform_timeout_s() -> float:
    """How long one call to the platform's API may take before it counts as unavailable."""
    return config.env_float("PAYMENT_PLATFORM_TIMEOUT", 10.0, SERVICE)


def server_ip() -> str:
    """The address the merchant API is told requests come from (``vnp_IpAddr``)."""
    return config.env("PAYMENT_SERVER_IP", "127.0.0.1", SERVICE) or "127.0.0.1"
