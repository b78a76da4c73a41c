"""Password policy and Argon2id hashing.

The policy follows what a citizen-facing portal can ask: 8 to 128 characters, at least three
of lower case, upper case, digits and symbols, not one of the commonest passwords, and not
containing the account's own ID number or phone number. Hashing uses Argon2id with the
OWASP minimum parameters by default (19 MiB, 2 passes), tunable by environment.
"""

from __future__ import annotations

import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from portal_common import config

MIN_LENGTH = 8
MAX_LENGTH = 128
COMMON = frozenset({
    "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwerty123",
    "abc12345", "11111111", "iloveyou", "admin123", "matkhau123", "Password1", "Password123",
    "Password@123", "P@ssw0rd", "Abc@1234", "Abcd@1234", "Aa@123456", "Aa123456", "Matkhau@123",
    "Vietnam@123", "Qwerty@123", "Admin@123", "Abc123456", "Zaq12wsx",
})

_hasher = PasswordHasher(
    time_cost=config.env_int("ARGON2_TIME_COST", 2, "identity"),
    memory_cost=config.env_int("ARGON2_MEMORY_KIB", 19456, "identity"),
    parallelism=config.env_int("ARGON2_PARALLELISM", 1, "identity"),
)
# Verified against when the account does not exist, so both answers take as long.
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")


def policy_problems(password: str, personal: tuple[str, ...] = ()) -> list[str]:
    """The rules a password breaks (empty when it is acceptable); never echoes the password."""
    if not isinstance(password, str):
        return ["The password must be a string."]
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        problems.append("Control characters are not allowed.")
    classes = sum([
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(c in string.punctuation or c == " " for c in password),
    ])
    if classes < 3:
        problems.append("Mix at least three of: lower case, upper case, digits, symbols.")
    if password in COMMON or password.lower() in {p.lower() for p in COMMON}:
        problems.append("This password is too common.")
    for value in personal:
        if value and len(value) >= 6 and value in password:
            problems.append("Do not include your ID or phone number.")
            break
    return problems


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-work check: an unknown account still costs one Argon2 verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return False
