"""Typed errors that cross the RPC boundary intact.

A service raises a ``ServiceError`` subclass; nameko serialises it, and because every class
here is registered with ``deserialize_to_instance`` the gateway gets the same class back and
turns it into an HTTP problem with the same ``code``. The errors say what went wrong, never
an HTTP status: the gateway maps each type to one (``gateway.http.problems.HTTP_STATUS``).
Anything else a service raises reaches the gateway as a generic ``RemoteError`` and becomes a
500 with no details.
"""

from __future__ import annotations

import json
from typing import Any

from nameko.exceptions import deserialize_to_instance

_WIRE = "__json__"


@deserialize_to_instance
class ServiceError(Exception):
    """A refusal a caller can act on: stable ``code``, message, optional details."""

    def __init__(self, code: str, message: str = "", details: Any = None):
        if isinstance(details, dict) and set(details) == {_WIRE}:
            details = json.loads(details[_WIRE])  # typed again after crossing the RPC boundary
        # nameko stringifies every non-text value of ``args`` (True -> "True"): send details as JSON
        super().__init__(code, message, {_WIRE: json.dumps(details, default=str)})
        self.code = code
        self.message = message or code
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@deserialize_to_instance
class InvalidInput(ServiceError):
    """The request is well-formed JSON but its content is not acceptable."""


@deserialize_to_instance
class NotFound(ServiceError):
    """The thing named does not exist (or the caller may not know it does)."""


@deserialize_to_instance
class Conflict(ServiceError):
    """The target moved on, or the action is not allowed in its current state."""


@deserialize_to_instance
class Unauthorized(ServiceError):
    """The caller is not signed in, or its credentials are not valid."""


@deserialize_to_instance
class Forbidden(ServiceError):
    """The caller is known but may not do this."""


@deserialize_to_instance
class TooManyRequests(ServiceError):
    """The caller spent its budget; ``details["retry_after"]`` says when to come back."""


@deserialize_to_instance
class Unavailable(ServiceError):
    """An outside party or dependency did not answer; retrying later may work."""


@deserialize_to_instance
class DatabaseUnavailable(Unavailable):
    """The database could not be reached, or the connection broke under a statement.

    ``retry_safe``: nothing was committed (the connection could not be opened, or it broke
    before the transaction's COMMIT was sent), so running the whole unit again is safe. The
    flag stays in the process: across RPC only the type and the code travel."""

    def __init__(self, code: str = "service_unavailable",
                 message: str = "The database is not answering; retry shortly.",
                 details: Any = None, retry_safe: bool = False):
        super().__init__(code, message, details if details is not None else {"retry_after": 5})
        self.retry_safe = retry_safe
