"""Who is calling: bearer tokens issued by the identity service, verified locally.

The gateway never calls identity to check a token: it verifies the signature with the key
set identity publishes (fetched once, refreshed when an unknown key id shows up), then the
expiry, issuer and audience, and refuses a token whose session or account identity has
revoked since (``gateway.http.revocations``, fed by identity's events). Roles decide which
endpoints a principal may use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("citizen", "business", "officer", "agency_system", "editor", "operator")
APPLICANT_ROLES = ("citizen", "business")
AGENCY_ROLES = ("officer", "agency_system")


@dataclass(frozen=True)
class Principal:
    """The signed-in caller, as the access token states it."""

    account_id: str
    role: str
    subject: str
    agency_code: str | None = None
    token_id: str | None = None
    claims: dict = field(default_factory=dict, compare=False)

    @property
    def is_applicant(self) -> bool:
        return self.role in APPLICANT_ROLES

    @property
    def is_agency(self) -> bool:
        return self.role in AGENCY_ROLES
