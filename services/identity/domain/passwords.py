"""Password policy and Argon2id hashing.

The policy follows what a citizen-facing portal can ask: 8 to 128 characters, at least three
of lower case, upper case, digits and symbols, not one of the commonest passwords, and not
containing the account's own ID number or phone number. Hashing uses Argon2id with the
OWASP minimum parameters by default (19 MiB, 2 passes); the settings pass other ones.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from portal_common.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 128
COMMON = frozenset({
    "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwerty123",
    "abc12345", "11111111", "iloveyou", "admin123", "matkhau123", "Password1", "Password123",
    "Password@123", "P@ssw0rd", "Abc@1234", "Abcd@1234", "Aa@123456", "Aa123456", "Matkhau@123",
    "Vietnam@123", "Qwerty@123", "Admin@123", "Abc123456", "Zaq12wsx",
})



@dataclass(frozen=True)
class Argon2Params:
    """The cost of one hash; a stored hash made with other ones is upgraded at the next sign-in."""

    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


DEFAULT_PARAMS = Argon2Params()


@functools.cache
def _hasher(params: Argon2Params) -> PasswordHasher:
    return PasswordHasher(time_cost=params.time_cost, memory_cost=params.memory_kib,
                          parallelism=params.parallelism)


@functools.cache
def _dummy_hash(params: Argon2Params) -> str:
    """Verified against when the account does not exist, so both answers take as long."""
    return _hasher(params).hash("not-a-real-password-used-for-timing")


def prepare(params: Argon2Params) -> None:
    """Make the dummy hash before the first sign-in, so the first unknown account costs what later ones do."""
    _dummy_hash(params)


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


def require_acceptable(password: str, personal: tuple[str, ...], field: str = "password") -> None:
    """Refuse a password the policy does not accept (``weak_password``, one detail per rule broken)."""
    problems = policy_problems(password, personal)
    if problems:
        raise InvalidInput("weak_password", "The password does not meet the policy.",
                           [{"field": field, "message": m} for m in problems])


def hash_password(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    return _hasher(params).hash(password)


def verify_password(stored_hash: str | None, password: str, params: Argon2Params = DEFAULT_PARAMS) -> bool:
    """Constant-work check: an unknown account still costs one Argon2 verification."""
    try:
        return _hasher(params).verify(stored_hash or _dummy_hash(params), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str, params: Argon2Params = DEFAULT_PARAMS) -> bool:
    try:
        return _hasher(params).check_needs_rehash(stored_hash)
    except InvalidHashError:
        return False
