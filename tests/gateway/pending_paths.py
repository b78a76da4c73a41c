"""API.md endpoints that are fixed by the contract but not built yet, each with the issue that builds it.

The contract test skips exactly these, so the rest of API.md stays enforced while the new
sections are under way. The list may only shrink: a test fails as soon as a pending endpoint is
served (take it off here) or is no longer in API.md (a stale entry).

The "Citizen portal (web)" section (issue 12) names no gateway paths: its pages are served by the
portal front end on port 8080, not by the gateway, so it has no entries here.
"""

from __future__ import annotations

from typing import NamedTuple


class Pending(NamedTuple):
    method: str
    path: str  # as written in API.md, query string dropped
    issue: int


VNEID, PAYMENT, AGENCY_FEED = 13, 14, 15

PENDING: tuple[Pending, ...] = (
)
