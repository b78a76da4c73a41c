"""Identity rules in plain Python (no I/O): ID numbers, phones, passwords, codes, lockout,
certificates and tokens."""
