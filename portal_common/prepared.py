"""Server-side prepared statements for the statements a service runs on every request.

PostgreSQL parses, analyses and plans every statement it is sent as text. For the short
statements of a submission that work is a large share of the server's CPU (a third of an
indexed insert's cost, and more than the execution for some updates). A statement whose SQL
is marked ``Prepared`` is sent once per connection as ``PREPARE`` and then as
``EXECUTE name(args)``: the server keeps the parsed statement and, after a few executions,
a generic plan.

Only marked statements are prepared, because a parameter of a prepared statement takes its
type from its context once, where an inline literal takes it at each execution: mark a
statement only when each placeholder's type is fixed by its context (a column, a cast, a
function's declared argument), never a placeholder in a polymorphic position
(``jsonb_build_object``, ``format``, a bare ``SELECT %s``). The arguments must be scalars
(strings, numbers, booleans, ``None``, UUIDs, bytes, dates, ``Json``) or lists of strings,
integers, UUIDs and ``None``: a list goes as an array in its text form (``'{"a","b"}'``), which
the server reads as the parameter's array type (``ARRAY['a']`` is a ``text[]``, which does not
coerce to a ``uuid[]``). A call with anything else runs as plain text, and so does a statement
the server refuses to prepare.

The first use on a connection costs one extra round trip (``PREPARE``, inside a savepoint
when a transaction is open, so a refusal does not abort it). ``PREPARE`` is not undone by a
rollback, and a name is never reused on a connection, so a round trip that fails leaves no
name half-known. ``DB_PREPARE=0`` turns it off: needed behind a pooler that hands a session's
statements to different server connections (PgBouncer in transaction mode).
"""

from __future__ import annotations

import datetime
import decimal
import logging
import re
import uuid
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from portal_common import config

__all__ = ["Prepared", "PreparedStatements", "PreparingConnection", "statement_bytes"]


class Prepared(str):
    """SQL text (``%s`` or ``%(name)s`` placeholders) that a pooled connection prepares."""

    __slots__ = ()


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")
_PREPARABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES")
_SCALARS = frozenset({str, int, float, bool, type(None), bytes, uuid.UUID, datetime.datetime, datetime.date,
                      datetime.time, decimal.Decimal, psycopg2.extras.Json})
_log = logging.getLogger(__name__)
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
_IN_TRANSACTION = psycopg2.extensions.TRANSACTION_STATUS_INTRANS


class _Form:
    """A marked statement in the server's form: ``$n`` placeholders, and the argument list
    that ``EXECUTE`` takes in psycopg2's form."""

    __slots__ = ("arguments", "named", "server_text")

    def __init__(self, query: str):
        names: dict[str, int] = {}
        positional = 0

        def number(match: re.Match) -> str:
            nonlocal positional
            if match.group(0) == "%%":
                return "%"
            if match.group(1) is None:
                positional += 1
                return f"${positional}"
            return f"${names.setdefault(match.group(1), len(names) + 1)}"

        self.server_text = _PLACEHOLDER.sub(number, query)
        if positional and names:
            raise ValueError("a statement mixes %s and %(name)s placeholders")
        self.named = bool(names)
        self.arguments = ("(" + ", ".join(f"%({n})s" for n in names) + ")" if names
                          else "(" + ", ".join(["%s"] * positional) + ")" if positional else "")


_FORMS: dict[str, _Form | None] = {}  # None: not preparable (not one statement of a preparable kind)
_REFUSED: set[str] = set()  # statements the server would not prepare (a parameter of unknown type)


def _form(query: str) -> _Form | None:
    try:
        return _FORMS[query]
    except KeyError:
        pass
    text = query.strip()
    form = None
    if ";" not in text and text.split(None, 1)[0].upper() in _PREPARABLE:
        form = _Form(text)
    if len(_FORMS) < 4096:  # a bound against statements built with values in their text
        _FORMS[query] = form
    return form


class PreparedStatements:
    """One connection's prepared statements: the marked SQL text to the name it runs under."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = config.env_bool("DB_PREPARE", True) if enabled is None else enabled
        self._names: dict[str, bytes] = {}
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._names)

    def readable(self, statement: bytes) -> bytes:
        """``statement`` as sent, with the SQL of each statement it runs by name added in a
        comment (for logs and tests that read what a round trip held)."""
        for query, name in self._names.items():
            if b"EXECUTE " + name + b"(" in statement:
                statement += b" /* " + name + b": " + query.encode() + b" */"
        return statement

    def name(self, conn: Any, query: str, form: _Form) -> bytes | None:
        """The name ``query`` runs under on ``conn``, preparing it first when new; None when it
        is to run as plain text (refused, or the transaction is already failed)."""
        name = self._names.get(query)
        if name is not None:
            return name
        status = conn.info.transaction_status
        if query in _REFUSED or status not in (_IDLE, _IN_TRANSACTION) or len(self._names) >= 512:
            return None
        self._sequence += 1
        name = f"portal_{self._sequence}".encode()
        prepare = b"PREPARE " + name + b" AS " + form.server_text.encode()
        # in a transaction, inside a savepoint: a refusal must not abort the caller's transaction
        savepoint, release = ((b"", b"") if status == _IDLE else
                              (b"SAVEPOINT portal_prepare;", b";RELEASE SAVEPOINT portal_prepare"))
        with psycopg2.extensions.cursor(conn) as cur:
            try:
                cur.execute(savepoint + prepare + release)
            except psycopg2.OperationalError:
                raise
            except psycopg2.Error as exc:
                _refused(query, exc)
                if savepoint:
                    cur.execute(b"ROLLBACK TO SAVEPOINT portal_prepare;RELEASE SAVEPOINT portal_prepare")
                return None
        self._names[query] = name
        return name


class PreparingConnection(psycopg2.extensions.connection):
    """A connection that keeps its prepared statements (``prepared``). Pooled connections
    (``MergedBeginConnection``) run marked statements by name in every cursor; on a plain
    one (the outbox relay's) callers send them with ``statement_bytes``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.prepared = PreparedStatements()


def _refused(query: str, exc: psycopg2.Error) -> None:
    """Remember (and say once) that the server would not prepare a marked statement: a
    statement marked by mistake, which runs as plain text and so still works."""
    _REFUSED.add(query)
    _log.warning("statement runs unprepared: the server refused to prepare it (%s): %.120s",
                 str(exc).strip().splitlines()[0], query)


_ELEMENTS = frozenset({str, int, uuid.UUID, type(None)})


def _array_text(values: list) -> str | None:
    """A list as PostgreSQL's array text (``{"a",NULL}``); None when an element has no plain
    text form here."""
    if not all(type(v) in _ELEMENTS for v in values):
        return None
    return "{" + ",".join("NULL" if v is None else
                          '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _arguments(vars: Any, named: bool) -> Any:
    """``vars`` with each list in its array text; None when one is neither scalar nor such a list."""
    out = {} if named else []
    for key, value in (vars.items() if named else enumerate(vars)):
        if type(value) is list:
            value = _array_text(value)
            if value is None:
                return None
        elif type(value) not in _SCALARS:
            return None
        if named:
            out[key] = value
        else:
            out.append(value)
    return out


def execute_form(cur: Any, query: Any, vars: Any) -> bytes | None:
    """``EXECUTE name(args)`` for a marked statement on a connection that prepares; None when
    the statement is to be sent as it is."""
    if type(query) is not Prepared:
        return None
    statements = getattr(cur.connection, "prepared", None)
    if statements is None or not statements.enabled:
        return None
    if vars is None and "%" in query:  # sent as it is, its "%%" would not be "%"
        return None
    form = _form(query)
    if form is None:
        return None
    if vars is None or not form.arguments:
        if vars or form.arguments:  # placeholders without values, or values without placeholders
            return None
        arguments = None
    else:
        arguments = _arguments(vars, form.named) if isinstance(vars, dict) == form.named else None
        if arguments is None:
            return None
    name = statements.name(cur.connection, query, form)
    if name is None:
        return None
    if arguments is None:
        return b"EXECUTE " + name
    return cur.mogrify(b"EXECUTE " + name + form.arguments.encode(), arguments)


def statement_bytes(cur: Any, query: Any, vars: Any = None) -> bytes:
    """The bytes that run ``query`` with ``vars`` on ``cur``'s connection (for callers that
    send several statements in one round trip)."""
    executed = execute_form(cur, query, vars)
    if executed is not None:
        return executed
    if vars is not None:
        return cur.mogrify(query, vars)
    return query.encode() if isinstance(query, str) else query
