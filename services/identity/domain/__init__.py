"""Identity's rules in plain Python: no I/O, no database, no configuration reads (values
such as Argon2 costs or lockout policies are passed in). ``ids``, ``passwords``, ``otp``,
``lockout``, ``certificates``, ``tokens``, ``accounts``, ``sessions``, ``notifications``; a
refusal is one of the typed errors of ``portal_common.errors``."""
