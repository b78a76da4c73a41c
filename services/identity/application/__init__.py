"""identity's use cases, one module per group; each opens and closes its transactions.

``registration`` (mobile subscription, BHXH), ``certificates`` (SIM / USB token challenge,
registration and sign-in) and ``pki`` (trusted CAs, revocation lists), ``signin`` (password +
one-time code) with ``attempts`` (lockout bookkeeping) and ``codes`` (sending and checking
codes), ``sessions`` (tokens, refresh rotation, sign-out, revocations), ``passwords`` (change,
forgotten-password reset), ``profile`` (``/me``), ``staff`` (staff accounts, agency systems),
``applicant_notices`` (SMS about dossier events, the opt-out), ``keys`` (signing keys),
``stand_ins`` (the local stand-ins' endpoints, dev tokens), ``housekeeping`` (expired rows);
``shared`` holds what they all use.
"""
