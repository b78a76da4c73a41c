"""The identity service: citizen, business and staff accounts, every registration and
sign-in method of the portal, and the tokens the gateway verifies on its own.

Read top-down:

- ``service.py``: nameko entrypoints (RPC for the gateway, a clean-up timer), thin;
- the flows, one module each: ``registration`` (mobile subscription, BHXH), ``certificate``
  (SIM / USB token challenge-response, registration and sign-in), ``signin`` (password +
  one-time code, lockout), ``sessions`` (tokens, refresh rotation, sign-out),
  ``staff_accounts`` and ``agency_clients`` (staff and back-office system credentials),
  ``dev_tokens`` and ``dev`` (the local stand-ins' endpoints), ``otp_flow`` (sending and checking
  codes), ``profile`` (``/me``), ``notifications`` (SMS to applicants about their dossiers'
  events, and their opt-out), ``housekeeping`` (expired rows);
- ``domain/``: pure rules: ``ids`` (CCCD structure, CMT, tax and BHXH codes, phones),
  ``passwords`` (policy, Argon2id), ``otp``, ``lockout`` (back-off), ``certificates``
  (X.509 chain, validity, key usage, subject, signature), ``tokens`` (JWT and refresh tokens);
- ``keys.py``: the signing keys (first-start generation, shared through the table, rotation
  that publishes before it signs, JWKS); ``adapters/``: carrier, social insurance and SMS
  behind one interface each (``local`` stand-ins on their own tables, or ``http``);
- ``repository.py``: the SQL; ``migrations/``: the schema; ``settings.py``: configuration;
  ``admin.py``: bootstrap command (first operator, key rotation).

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
``NOTIFY_MAX_ATTEMPTS`` (8), ``NOTIFY_TICK`` (30 s), ``APPLICANT_SMS`` (on; off drops the notices).

No password, one-time code, refresh token, client secret or private key is stored in clear,
logged, put in an event or echoed in an error.
"""
