"""Identity's configuration, read from the environment (``IDENTITY_<NAME>`` beats ``<NAME>``)
here and nowhere else: ``load()`` for a worker's settings, ``load_keys()`` for the signing
keys, and the few values a timer or a module-level limit needs when the code is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from portal_common import config
from services.identity.domain.certificates import REVOCATION_POLICIES
from services.identity.domain.lockout import LockoutPolicy
from services.identity.domain.passwords import Argon2Params

S = "identity"

# read once, when the code is imported
OTP_MAX_PER_PHONE = config.env_int("OTP_MAX_PER_PHONE", 10, S)  # codes to one number per 15 minutes
NOTICE_TICK_S = config.env_float("NOTIFY_TICK", 30.0, S)  # how often failed applicant SMS are retried
NOTICE_OWNER_WAIT_S = config.env_float("NOTIFY_OWNER_WAIT", 600.0, S)  # then an event whose owner is unknown is dropped
NOTICE_MAX_ATTEMPTS = config.env_int("NOTIFY_MAX_ATTEMPTS", 8, S)  # sends of one SMS before it is marked failed
# an installation without an SMS contract (or during a provider outage) turns the notices off:
# events are then consumed and dropped, and none is sent later
APPLICANT_SMS = config.env_bool("APPLICANT_SMS", True, S)


@dataclass(frozen=True)
class Settings:
    access_ttl_s: int
    refresh_ttl_s: int
    dev_token_ttl_s: int
    otp_ttl_s: int
    otp_attempts: int
    challenge_ttl_s: int
    account_lockout: LockoutPolicy
    source_lockout: LockoutPolicy
    local_adapters: bool
    carrier_adapter: str
    bhxh_adapter: str
    sms_adapter: str
    trusted_ca_file: str | None
    source_lockout_exempt: tuple[str, ...] = ()
    cert_revocation_check: str = "if-available"
    crl_dir: str | None = None
    argon2: Argon2Params = field(default_factory=Argon2Params)


@dataclass(frozen=True)
class KeySettings:
    """``IDENTITY_SIGNING_KEY`` / ``_FILE`` (a configured key instead of generated ones),
    ``IDENTITY_KEY_PASSPHRASE`` (stored private keys encrypted) and ``KEY_ACTIVATION_DELAY``."""

    configured_pem: str | None
    passphrase: bytes | None
    activation_delay_s: float


def load() -> Settings:
    local = config.env_bool("LOCAL_ADAPTERS", False, S)
    # The stand-ins are the default adapters; LOCAL_ADAPTERS also opens the dev endpoints
    # (and dev staff tokens), which a real deployment must never expose.
    default_adapter = "local" if local else (config.env("ADAPTERS", "local", S) or "local")
    return Settings(
        access_ttl_s=config.env_int("ACCESS_TOKEN_TTL", 600, S),
        refresh_ttl_s=config.env_int("REFRESH_TOKEN_TTL", 30 * 24 * 3600, S),
        dev_token_ttl_s=config.env_int("DEV_TOKEN_TTL", 8 * 3600, S),
        otp_ttl_s=config.env_int("OTP_TTL", 300, S),
        otp_attempts=config.env_int("OTP_ATTEMPTS", 5, S),
        challenge_ttl_s=config.env_int("CHALLENGE_TTL", 300, S),
        account_lockout=LockoutPolicy(config.env_int("LOCKOUT_THRESHOLD", 5, S),
                                      config.env_int("LOCKOUT_BASE_SECONDS", 60, S),
                                      config.env_int("LOCKOUT_MAX_SECONDS", 3600, S)),
        source_lockout=LockoutPolicy(config.env_int("SOURCE_LOCKOUT_THRESHOLD", 50, S),
                                     config.env_int("SOURCE_LOCKOUT_BASE_SECONDS", 60, S),
                                     config.env_int("SOURCE_LOCKOUT_MAX_SECONDS", 3600, S)),
        local_adapters=local,
        carrier_adapter=config.env("CARRIER_ADAPTER", default_adapter, S) or "local",
        bhxh_adapter=config.env("BHXH_ADAPTER", default_adapter, S) or "local",
        sms_adapter=config.env("SMS_ADAPTER", default_adapter, S) or "local",
        trusted_ca_file=config.env("TRUSTED_CA_FILE", None, S),
        # Addresses whose failures are not counted per source: loopback by default (local
        # tools, tests and a same-host reverse proxy would otherwise lock everyone out).
        source_lockout_exempt=tuple(
            n.strip() for n in (config.env("SOURCE_LOCKOUT_EXEMPT", "127.0.0.0/8,::1", S) or "").split(",")
            if n.strip()),
        cert_revocation_check=_revocation_policy(),
        crl_dir=config.env("CRL_DIR", None, S) or None,
        argon2=Argon2Params(time_cost=config.env_int("ARGON2_TIME_COST", 2, S),
                            memory_kib=config.env_int("ARGON2_MEMORY_KIB", 19456, S),
                            parallelism=config.env_int("ARGON2_PARALLELISM", 1, S)),
    )


def load_keys() -> KeySettings:
    pem = config.env("IDENTITY_SIGNING_KEY", None)
    path = config.env("IDENTITY_SIGNING_KEY_FILE", None)
    if not pem and path:
        pem = Path(path).read_text()
    passphrase = config.env("IDENTITY_KEY_PASSPHRASE", None)
    return KeySettings(configured_pem=pem or None, passphrase=passphrase.encode() if passphrase else None,
                       activation_delay_s=config.env_float("KEY_ACTIVATION_DELAY", 30.0, S))


def _revocation_policy() -> str:
    """``CERT_REVOCATION_CHECK``: a misspelt value stops the service rather than weakening the check."""
    value = (config.env("CERT_REVOCATION_CHECK", "if-available", S) or "if-available").strip().lower()
    if value not in REVOCATION_POLICIES:
        raise ValueError(f"CERT_REVOCATION_CHECK must be one of {', '.join(REVOCATION_POLICIES)}, not {value!r}")
    return value
