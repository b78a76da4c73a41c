"""Assurance levels (pure): a procedure version may ask for a minimum VNeID level.

The applicant's level is the ``acr`` of their access token (identity sets it to the level of
the account's last sign-in with VNeID: "1" or "2"; absent, the account never signed in so and
holds level 0). A filing below the procedure's ``min_assurance_level`` is refused before
anything is written.
"""

from __future__ import annotations

from typing import Any

from portal_common.errors import Forbidden

LEVELS = {"1": 1, "2": 2}


def held_level(acr: Any) -> int:
    """The level an access token's ``acr`` states; 0 for none or anything unknown."""
    return LEVELS.get(str(acr).strip(), 0) if acr is not None else 0


def require_level(procedure: dict[str, Any], acr: Any) -> None:
    """Refuse (403 ``assurance_level_too_low``) a filing whose applicant is below the procedure's level."""
    required = procedure.get("min_assurance_level")
    if not isinstance(required, int) or required <= 0:
        return
    held = held_level(acr)
    if held < required:
        raise Forbidden("assurance_level_too_low",
                        f"This procedure needs a sign-in with VNeID at level {required}; this session is at "
                        f"level {held}. Sign in with VNeID at level {required} and file again.",
                        {"required_level": required, "assurance_level": held})
