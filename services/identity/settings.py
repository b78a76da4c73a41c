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
NOTICE_BATCH = config.env_int("NOTIFY_BATCH", 50, S)  # dossier events handled together at most (1: one at a time)
NOTICE_BATCHES = config.env_int("NOTIFY_BATCHES", 1, S)  # batches of dossier events handled at the same time
# how long an event that would be handled alone waits for others to join its batch
NOTICE_LINGER_S = config.env_float("NOTIFY_BATCH_LINGER_MS", 0.0, S) / 1000.0
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


@dataclass(frozen=True)
class VneidSettings:
    """Sign-in with VNeID: the provider (``VNEID_ISSUER``, its discovery document under
    ``/.well-known/openid-configuration``), this portal's client registration (``VNEID_CLIENT_ID``
    with ``VNEID_CLIENT_SECRET``, or ``VNEID_PRIVATE_KEY_FILE`` for ``private_key_jwt``), and the
    redirect URIs registered with it (``VNEID_REDIRECT_URIS``, comma-separated). Without an issuer
    the sign-in is off (``vneid_not_configured``)."""

    issuer: str | None
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    token_auth_method: str = "client_secret_basic"
    redirect_uris: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("ES256", "RS256")
    scope: str = "openid profile phone"
    state_ttl_s: int = 600
    link_ttl_s: int = 600
    jwks_refetch_s: float = 5.0
    discovery_ttl_s: float = 3600.0
    leeway_s: int = 60
    http_timeout_s: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
UNSAFE_ALGORITHMS = ("none", "HS256", "HS384", "HS512")


def load_vneid() -> VneidSettings:
    key_file = config.env("VNEID_PRIVATE_KEY_FILE", None, S)
    pem = Path(key_file).read_text() if key_file else None
    method = config.env("VNEID_TOKEN_AUTH_METHOD", "private_key_jwt" if pem else "client_secret_basic", S)
    if method not in TOKEN_AUTH_METHODS:
        raise ValueError(f"VNEID_TOKEN_AUTH_METHOD must be one of {', '.join(TOKEN_AUTH_METHODS)}")
    algorithms = tuple(a.strip() for a in (config.env("VNEID_ID_TOKEN_ALGS", "ES256,RS256", S) or "").split(",")
                       if a.strip())
    if not algorithms or any(a in UNSAFE_ALGORITHMS or a.upper().startswith("HS") for a in algorithms):
        raise ValueError("VNEID_ID_TOKEN_ALGS must name asymmetric algorithms only (never none or HS*)")
    issuer = config.env("VNEID_ISSUER", None, S)
    return VneidSettings(
        issuer=issuer.rstrip("/") if issuer else None,
        client_id=config.env("VNEID_CLIENT_ID", "", S) or "",
        client_secret=config.env("VNEID_CLIENT_SECRET", None, S),
        private_key_pem=pem,
        token_auth_method=method,
        redirect_uris=tuple(u.strip() for u in (config.env("VNEID_REDIRECT_URIS", "", S) or "").split(",")
                            if u.strip()),
        algorithms=algorithms,
        scope=config.env("VNEID_SCOPE", "openid profile phone", S) or "openid profile phone",
        state_ttl_s=config.env_int("VNEID_STATE_TTL", 600, S),
        link_ttl_s=config.env_int("VNEID_LINK_TTL", 600, S),
        jwks_refetch_s=config.env_float("VNEID_JWKS_REFETCH_INTERVAL", 5.0, S),
        discovery_ttl_s=config.env_float("VNEID_DISCOVERY_TTL", 3600.0, S),
        leeway_s=config.env_int("VNEID_CLOCK_LEEWAY", 60, S),
        http_timeout_s=config.env_float("VNEID_HTTP_TIMEOUT", 10.0, S),
    )
