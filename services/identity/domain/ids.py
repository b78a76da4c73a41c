"""Structure of Vietnamese identity numbers: CCCD (12 digits), old CMT (9 digits), tax code,
social-insurance code and mobile numbers.

A CCCD reads ``PPP G YY NNNNNN``: ``PPP`` the province of birth registration (the 63 codes of
Circular 59/2021/TT-BCA, still printed on every card after the 2025 merger), ``G`` gender and
century (0/1 male/female born 1900-1999, 2/3 for 2000-2099, 4/5, 6/7, 8/9 for the next
centuries), ``YY`` the last two digits of the birth year, then six serial digits.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from portal_common.errors import InvalidInput

_PROVINCE_CODES = (
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 035 036"
    " 037 038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 070 072 074 075"
    " 077 079 080 082 083 084 086 087 089 091 092 093 094 095 096"
)
CCCD_PROVINCES = frozenset(_PROVINCE_CODES.split())
GENDERS = ("male", "female")
_CCCD = re.compile(r"^\d{12}$")
_CMT = re.compile(r"^\d{9}$")
_TAX_CODE = re.compile(r"^\d{10}(\d{3})?$")
_BHXH = re.compile(r"^\d{10}$")
_MOBILE = re.compile(r"^0(3|5|7|8|9)\d{8}$")


@dataclass(frozen=True)
class CccdProblem:
    """Why a CCCD does not fit: a stable code and an explanation for the user."""

    code: str
    message: str


def cccd_problem(cccd: str, date_of_birth: dt.date | None = None, gender: str | None = None) -> CccdProblem | None:
    """None when ``cccd`` is well-formed and agrees with the declared birth date and gender."""
    if not isinstance(cccd, str) or not _CCCD.match(cccd):
        return CccdProblem("invalid_cccd", "A CCCD number has exactly 12 digits.")
    if cccd[:3] not in CCCD_PROVINCES:
        return CccdProblem("invalid_cccd", "The first three digits of a CCCD must be a province code.")
    century_digit = int(cccd[3])
    century_start = 1900 + 100 * (century_digit // 2)
    card_gender = GENDERS[century_digit % 2]
    year = century_start + int(cccd[4:6])
    if date_of_birth is not None and date_of_birth.year != year:
        return CccdProblem("cccd_mismatch", "The CCCD does not match the declared year of birth.")
    if gender is not None and gender != card_gender:
        return CccdProblem("cccd_mismatch", "The CCCD does not match the declared gender.")
    return None


def cccd_birth(cccd: str) -> tuple[int, str]:
    """The birth year and gender a well-formed CCCD encodes."""
    digit = int(cccd[3])
    return 1900 + 100 * (digit // 2) + int(cccd[4:6]), GENDERS[digit % 2]


def is_cccd(value: str) -> bool:
    return isinstance(value, str) and cccd_problem(value) is None


def is_cmt(value: str) -> bool:
    return isinstance(value, str) and bool(_CMT.match(value))


def is_tax_code(value: str) -> bool:
    """Enterprise tax code: 10 digits, or 13 for a branch (written with or without the dash)."""
    return isinstance(value, str) and bool(_TAX_CODE.match(value.replace("-", "")))


def normalize_tax_code(value: str) -> str:
    return value.replace("-", "")


def is_bhxh_code(value: str) -> bool:
    return isinstance(value, str) and bool(_BHXH.match(value))


def normalize_phone(value: str) -> str | None:
    """A Vietnamese mobile number as ``0XXXXXXXXX``, or None when it is not one."""
    if not isinstance(value, str):
        return None
    digits = re.sub(r"[\s.()-]", "", value)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    return digits if _MOBILE.match(digits) else None


def mask_phone(phone: str) -> str:
    """Show where a code went without giving the number away: ``09******78``."""
    return phone[:2] + "*" * (len(phone) - 4) + phone[-2:] if len(phone) > 4 else "*" * len(phone)


# -- refusals of typed input (``InvalidInput`` naming the field) ---------------------------------

_NOT_MOBILE = "Not a Vietnamese mobile number."
_NOT_BHXH = "A social-insurance (BHXH) code has 10 digits."
_NOT_CMT = "An old ID card (CMT) number has 9 digits."


def require_phone(value: str, field: str = "phone") -> str:
    """The normalized mobile number, or ``invalid_phone``."""
    phone = normalize_phone(value)
    if phone is None:
        raise InvalidInput("invalid_phone", _NOT_MOBILE, [{"field": field, "message": _NOT_MOBILE}])
    return phone


def require_cccd(cccd: str, date_of_birth: dt.date | None = None, gender: str | None = None) -> str:
    """``cccd`` when well-formed (and agreeing with the birth date and gender given), or its problem."""
    problem = cccd_problem(cccd, date_of_birth, gender)
    if problem is not None:
        raise InvalidInput(problem.code, problem.message, [{"field": "cccd", "message": problem.message}])
    return cccd


def require_bhxh_code(value: str) -> str:
    if not is_bhxh_code(value):
        raise InvalidInput("invalid_bhxh_code", _NOT_BHXH, [{"field": "bhxh_code", "message": _NOT_BHXH}])
    return value


def require_cmt(value: str, field: str = "old_id_number") -> str:
    if not is_cmt(value):
        raise InvalidInput("invalid_cmt", _NOT_CMT, [{"field": field, "message": _NOT_CMT}])
    return value


def require_signin_id(identifier: str) -> str:
    """A 12-digit CCCD or a 9-digit old CMT, the ID numbers a citizen signs in with."""
    if not (is_cmt(identifier) or cccd_problem(identifier) is None):
        raise InvalidInput("invalid_id_number", "Sign in with a 12-digit CCCD or a 9-digit old ID card number.",
                           [{"field": "cccd", "message": "Not a CCCD or CMT number."}])
    return identifier


def same_name(a: str, b: str) -> bool:
    """Two spellings of a person's name are the same one (case, spacing and Unicode form aside)."""
    def fold(s: str) -> str:
        return " ".join(unicodedata.normalize("NFC", s).casefold().split())
    return fold(a) == fold(b)


def clean_name(value: str) -> str:
    """A name with its runs of white space made single spaces."""
    return " ".join(value.split())
