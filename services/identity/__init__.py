"""The identity service: citizen, business and staff accounts, every registration and
sign-in method of the portal, and the tokens the gateway verifies on its own.

Read top-down, in the shape every service has (``docs/architecture.md``):

- ``service.py``: the nameko entrypoints (RPC for the gateway, dossier-event handlers, timers),
  one call each into the application layer; ``dependencies.py``: its own dependency providers
  (the outside parties the settings choose, this worker's signing key);
- ``application/``: the use cases, one module per group (registration, certificates and pki,
  sign-in with attempts and codes, sessions, passwords, profile, staff and agency systems,
  applicant notices, signing keys, the local stand-ins, housekeeping); transactions begin and
  end there;
- ``domain/``: pure rules, no I/O and no configuration: ``ids`` (CCCD structure, CMT, tax and
  BHXH codes, phones), ``passwords`` (policy, Argon2id), ``otp``, ``lockout`` (back-off),
  ``certificates`` (X.509 chain, validity, key usage, subject, signature, CRLs, challenges),
  ``tokens`` (JWT, refresh tokens, client secrets, signing keys), ``accounts`` (roles, views,
  registration events), ``sessions`` (sign-out events, revocations), ``notifications`` (SMS
  texts, who is skipped), ``oidc`` (VNeID claims, assurance levels, link rules);
- ``repository.py``: the SQL; ``migrations/``: the schema; ``adapters/``: carrier, social
  insurance and SMS behind one interface each (``local`` stand-ins on their own tables, or
  ``http``), and ``vneid`` (the OpenID Connect relying party); ``settings.py``: the
  configuration, read nowhere else; ``admin.py``: the operator command (first operator, key
  rotation, CRL import, disable / reinstate staff).

Configuration (``IDENTITY_<NAME>`` beats ``<NAME>``): ``LOCAL_ADAPTERS`` (the dev endpoints and
dev staff tokens; never on in production), ``CARRIER_ADAPTER`` / ``BHXH_ADAPTER`` /
``SMS_ADAPTER`` (``local`` default, or ``http`` with ``<PARTY>_URL`` and ``<PARTY>_API_KEY``),
``ACCESS_TOKEN_TTL`` (600 s), ``REFRESH_TOKEN_TTL`` (30 days), ``DEV_TOKEN_TTL`` (8 h),
``OTP_TTL`` (300 s), ``OTP_ATTEMPTS`` (5), ``OTP_MAX_PER_PHONE`` (10 per 15 min),
``CHALLENGE_TTL`` (300 s), ``LOCKOUT_THRESHOLD`` / ``LOCKOUT_BASE_SECONDS`` /
``LOCKOUT_MAX_SECONDS`` (5, 60, 3600) and the ``SOURCE_LOCKOUT_*`` equivalents (50, 60, 3600),
``SOURCE_LOCKOUT_EXEMPT`` (loopback), ``ARGON2_TIME_COST`` / ``ARGON2_MEMORY_KIB`` /
``ARGON2_PARALLELISM`` (2, 19456, 1), ``TRUSTED_CA_FILE`` (PEM bundle of trusted CAs),
``IDENTITY_SIGNING_KEY`` or ``IDENTITY_SIGNING_KEY_FILE`` (an Ed25519 PEM instead of a
generated key), ``IDENTITY_KEY_PASSPHRASE`` (encrypts stored private keys),
``KEY_ACTIVATION_DELAY`` (30 s), ``NOTIFY_OWNER_WAIT`` (600 s), ``NOTIFY_RETRY_PAUSE`` (1 s),
``NOTIFY_MAX_ATTEMPTS`` (8), ``NOTIFY_TICK`` (30 s), ``NOTIFY_BATCH`` / ``NOTIFY_BATCHES`` (50, 1:
dossier events handled together at most, batches at once), ``NOTIFY_BATCH_LINGER_MS`` (0: how
long an event that would be handled alone waits for others to join it), ``APPLICANT_SMS`` (on; off drops the notices).
Sign-in with VNeID (``docs/vneid.md``): ``VNEID_ISSUER`` (unset: off), ``VNEID_CLIENT_ID``,
``VNEID_CLIENT_SECRET`` or ``VNEID_PRIVATE_KEY_FILE``, ``VNEID_TOKEN_AUTH_METHOD``,
``VNEID_REDIRECT_URIS``, ``VNEID_ID_TOKEN_ALGS`` (ES256,RS256; never none or HS*),
``VNEID_SCOPE``, ``VNEID_STATE_TTL`` / ``VNEID_LINK_TTL`` (600 s), ``VNEID_JWKS_REFETCH_INTERVAL``
(5 s), ``VNEID_DISCOVERY_TTL`` (3600 s), ``VNEID_CLOCK_LEEWAY`` (60 s), ``VNEID_HTTP_TIMEOUT`` (10 s).

No password, one-time code, refresh token, client secret or private key is stored in clear,
logged, put in an event or echoed in an error.
"""
