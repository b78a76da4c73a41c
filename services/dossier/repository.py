"""Persistence of the dossier service's write side, beside its event log.

What the application keeps besides events: content-addressed blobs and the documents that
name them, idempotency records of submissions, each agency's daily code counter, and the
access log. ``Repository`` is the port the application talks to; ``PgRepository`` keeps it
in PostgreSQL (``memory.MemoryStore`` keeps it in process, for tests that need no database).

A transaction (``transaction()``) is the application's unit of work. In PostgreSQL it
queues the writes whose results nobody reads (``PgTransaction.defer``) and sends them in one
round trip before the next read or the log append (``cursor``). A filing draws its code in
the commit's round trip as well (``code_at_commit``): every filing of an agency on one day
holds that agency's counter row from the draw to the commit, so the statements that name the
code go to the server with a stand-in for it, and ``run_with_drawn_code`` (migrations/005)
draws the number and runs them there. The row is then held only while the server itself
works, never across a round trip or the filing process's wait for a CPU.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import psycopg2

from portal_common.db import Database, Prepared
from portal_common.prepared import statement_bytes
from services.dossier.domain.documents import Upload

KEY_USED_SQLSTATE = "DK409"  # raised by claim_idempotency_key (migrations/005)


class KeyUsed(Exception):
    """The owner's idempotency key was claimed by an earlier filing: the transaction that
    tried to claim it again wrote nothing."""


class Transaction(Protocol):
    """One unit of work; ``cursor`` is the handle the event log appends with."""

    @property
    def cursor(self) -> Any: ...


class Repository(Protocol):
    """What the application stores besides events (every method but ``record_access`` runs
    inside a transaction the application opened)."""

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def reading(self) -> AbstractContextManager[Transaction]:
        """Reads that need no transaction around them (each sees what is committed as it
        runs): no ``BEGIN`` and no ``COMMIT`` to send. Nothing is written through it."""

    def lock(self, tx: Transaction, key: str) -> None:
        """Serialise, until the commit, the transactions that lock the same key."""

    def store_blob(self, tx: Transaction, upload: Upload) -> None: ...

    def blob(self, tx: Transaction, sha256: str) -> bytes | None: ...

    def add_document(self, tx: Transaction, upload: Upload, owner_id: str, code: str | None, kind: str,
                     draft_id: str | None = None, doc_id: str | None = None) -> dict[str, Any]:
        """Record a document whose blob is stored; returns its reference."""

    def staged_document(self, tx: Transaction, code: str, doc_id: str) -> dict[str, Any] | None:
        """An input document uploaded to this dossier (not necessarily in its events yet)."""

    def count_documents(self, tx: Transaction, code: str) -> int: ...

    def claim_key(self, tx: Transaction, owner_id: str, key: str, request_hash: str) -> None:
        """Record a new idempotency key. When the owner used it already the transaction
        raises ``KeyUsed`` (here, or when it commits) and writes nothing."""

    def key_record(self, tx: Transaction, owner_id: str, key: str) -> tuple[str, str | None] | None:
        """(request hash, dossier code or None) of an owner's idempotency key."""

    def bind_key(self, tx: Transaction, owner_id: str, key: str, code: str) -> None: ...

    def code_at_commit(self, tx: Transaction, agency_code: str, day: dt.date) -> str:
        """The code of the dossier this transaction files: the agency's next number of the day
        (no gaps: it rolls back with the transaction). What it returns may be a stand-in that the
        commit replaces, in every statement written after this call, with the code it draws
        there; ``drawn_code`` tells the code once the transaction has committed."""

    def drawn_code(self, tx: Transaction) -> str:
        """The code ``code_at_commit`` drew, after the commit."""

    def record_access(self, row: dict[str, Any]) -> None:
        """Append one row to the access log, in a transaction of its own."""

    def commit_with_next(self, tx: Transaction) -> None:
        """Let the transaction's next statement, its last (the log append), also commit it, in
        one round trip: a lock the transaction holds is released one wait sooner."""


def document_ref(doc_id: str, upload: Upload) -> dict[str, Any]:
    return {"id": doc_id, "requirement": upload.requirement, "name": upload.name,
            "content_type": upload.content_type, "size": upload.size, "sha256": upload.sha256}


_REF = ("id", "requirement", "name", "content_type", "size", "sha256")


class PgTransaction:
    """A PostgreSQL transaction with a queue of writes sent together."""

    def __init__(self, cur: Any):
        self._cur = cur
        self._pending: list[bytes] = []
        self._commit = False
        self._sending = _SendingCursor(self)
        # a code drawn at the commit: (agency, day, stand-in), and where its statements start
        self._late: tuple[str, dt.date, str] | None = None
        self._late_from = 0
        self._swap: tuple[bytes, bytes] | None = None  # (stand-in, code) once drawn before it
        self.drawn_code: str | None = None

    def defer(self, sql: str, args: tuple | list) -> None:
        self._pending.append(self._named(statement_bytes(self._cur, sql, args)))

    def flush(self) -> None:
        if self._late is not None:
            self.draw_now()
        if self._pending:
            self._cur.execute(b";\n".join(self._pending))
            self._pending.clear()

    @property
    def cursor(self) -> Any:
        """The cursor; the queued writes go ahead of its next statement, in the same round trip
        (the statement's result is the one fetched, as only the last result of a round trip is)."""
        return self._sending if self._pending or self._commit or self._late else self._cur

    def code_at_commit(self, agency_code: str, day: dt.date) -> str:
        """A stand-in for the code the commit's round trip draws (``run_with_drawn_code``):
        the agency's code form with a number of 24 random digits, which no code reaches and no
        filing can have guessed."""
        if self._late is not None or self.drawn_code is not None:
            raise RuntimeError("one code per transaction")
        stand_in = f"{agency_code}-{day:%y%m%d}-{secrets.randbelow(10 ** 24):024d}"
        self._late = (agency_code, day, stand_in)
        self._late_from = len(self._pending)
        return stand_in

    def draw_now(self) -> None:
        """Draw the code in a round trip of its own, because a statement before the commit
        needs an answer: the statements queued since the stand-in, and every one after, are sent
        with the code in its place."""
        agency_code, day, stand_in = self._late  # type: ignore[misc]
        self._late = None
        before, after = self._pending[:self._late_from], self._pending[self._late_from:]
        self._cur.execute(b";\n".join([*before, self._draw(agency_code, day, stand_in, b"")]))
        self.drawn_code = self._cur.fetchone()[0]
        self._swap = (stand_in.encode(), self.drawn_code.encode())
        self._pending = [self._named(s) for s in after]

    def _draw(self, agency_code: str, day: dt.date, stand_in: str, statements: bytes) -> bytes:
        return statement_bytes(self._cur, Prepared("SELECT run_with_drawn_code(%s, %s, %s, %s)"),
                               (agency_code, day, stand_in, statements.decode()))

    def _named(self, statement: bytes) -> bytes:
        """A statement with the drawn code in place of its stand-in."""
        return statement.replace(*self._swap) if self._swap else statement

    def _commit_batch(self, statement: bytes) -> bytes:
        """The round trip that ends the transaction: the queued writes, ``statement``, ``COMMIT``,
        and, when the code is drawn there, the statements that name it run by
        ``run_with_drawn_code`` and the code read back after the commit."""
        if self._late is None:
            return b";\n".join([*self._pending, statement, b"COMMIT"])
        agency_code, day, stand_in = self._late
        before, after = self._pending[:self._late_from], [*self._pending[self._late_from:], statement]
        draw = self._draw(agency_code, day, stand_in, b";\n".join(after))
        return b";\n".join([*before, draw, b"COMMIT", b"SELECT current_setting('dossier.drawn_code')"])

    def commit_with_next(self) -> None:
        """Send ``COMMIT`` behind the next statement, in its round trip (see ``_SendingCursor``)."""
        self._commit = True


class _SendingCursor:
    """The transaction's cursor, whose next ``execute`` also sends the queued writes first."""

    def __init__(self, tx: PgTransaction):
        self._tx = tx
        self._result_taken = False

    @property
    def description(self) -> Any:
        """None after the commit's round trip, whose last result (the drawn code) is the
        transaction's, not the statement's."""
        return None if self._result_taken else self._tx._cur.description

    def execute(self, sql: str | bytes, args: Any = None) -> None:
        tx = self._tx
        if tx._late is not None and not tx._commit:
            tx.draw_now()  # this statement's answer is wanted before the commit
        statement = tx._named(statement_bytes(tx._cur, sql, args))
        if not tx._commit:
            batch = b";\n".join([*tx._pending, statement])
            tx._pending.clear()
            tx._cur.execute(batch)
            return
        batch = tx._commit_batch(statement)
        tx._pending.clear()
        # Whatever breaks from here on may have broken after the commit: not safe to run again
        # (``Database.transaction`` reads the mark). The statement's own result is not returned.
        tx._commit = False
        tx._cur.connection.commit_sent = True
        tx._cur.execute(batch)
        if tx._late is not None:
            tx._late = None
            tx.drawn_code = tx._cur.fetchone()[0]
            self._result_taken = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx._cur, name)


class PgRepository:
    """``Repository`` in the service's PostgreSQL schema (tables of migrations/)."""

    def __init__(self, db: Database):
        self.db = db

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        try:
            with self.db.transaction(dict_rows=False) as cur:
                tx = PgTransaction(cur)
                yield tx
                tx.flush()
        except psycopg2.Error as exc:
            if exc.pgcode == KEY_USED_SQLSTATE:
                raise KeyUsed() from None
            raise

    @contextmanager
    def reading(self) -> Iterator[PgTransaction]:
        with self.db.autocommit(dict_rows=False) as cur:
            yield PgTransaction(cur)

    def commit_with_next(self, tx: PgTransaction) -> None:
        tx.commit_with_next()

    def lock(self, tx: PgTransaction, key: str) -> None:
        tx.cursor.execute(Prepared("SELECT pg_advisory_xact_lock(hashtext(%s))"), (key,))

    def store_blob(self, tx: PgTransaction, upload: Upload) -> None:
        tx.defer(Prepared("INSERT INTO blobs (sha256, size, content) VALUES (%s, %s, %s) "
                          "ON CONFLICT (sha256) DO NOTHING"), (upload.sha256, upload.size, upload.content))

    def blob(self, tx: PgTransaction, sha256: str) -> bytes | None:
        cur = tx.cursor
        cur.execute(Prepared("SELECT content FROM blobs WHERE sha256 = %s"), (sha256,))
        row = cur.fetchone()
        return None if row is None else bytes(row[0])

    def add_document(self, tx: PgTransaction, upload: Upload, owner_id: str, code: str | None, kind: str,
                     draft_id: str | None = None, doc_id: str | None = None) -> dict[str, Any]:
        doc_id = doc_id or str(uuid.uuid4())
        tx.defer(Prepared("INSERT INTO documents (id, dossier_code, draft_id, owner_id, kind, requirement, name, "
                          "content_type, size, sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"),
                 (doc_id, code, draft_id, owner_id, kind, upload.requirement, upload.name, upload.content_type,
                  upload.size, upload.sha256))
        return document_ref(doc_id, upload)

    def staged_document(self, tx: PgTransaction, code: str, doc_id: str) -> dict[str, Any] | None:
        cur = tx.cursor
        cur.execute("SELECT id::text, requirement, name, content_type, size, sha256 FROM documents "
                    "WHERE id = %s AND dossier_code = %s AND kind = 'input'", (doc_id, code))
        row = cur.fetchone()
        return None if row is None else dict(zip(_REF, row, strict=True))

    def count_documents(self, tx: PgTransaction, code: str) -> int:
        cur = tx.cursor
        cur.execute("SELECT count(*) FROM documents WHERE dossier_code = %s", (code,))
        return cur.fetchone()[0]

    def claim_key(self, tx: PgTransaction, owner_id: str, key: str, request_hash: str) -> None:
        # Refused by the server, at the commit's round trip, when the key is taken.
        tx.defer(Prepared("SELECT claim_idempotency_key(%s, %s, %s)"), (owner_id, key, request_hash))

    def key_record(self, tx: PgTransaction, owner_id: str, key: str) -> tuple[str, str | None] | None:
        cur = tx.cursor
        cur.execute(Prepared("SELECT request_hash, code FROM idempotency_keys WHERE owner_id = %s AND key = %s"),
                    (owner_id, key))
        row = cur.fetchone()
        return None if row is None else (row[0], row[1])

    def bind_key(self, tx: PgTransaction, owner_id: str, key: str, code: str) -> None:
        tx.defer(Prepared("UPDATE idempotency_keys SET code = %s WHERE owner_id = %s AND key = %s"),
                 (code, owner_id, key))

    def code_at_commit(self, tx: PgTransaction, agency_code: str, day: dt.date) -> str:
        # From the draw to the commit this agency's counter row is locked.
        return tx.code_at_commit(agency_code, day)

    def drawn_code(self, tx: PgTransaction) -> str:
        if tx.drawn_code is None:
            raise RuntimeError("no code drawn: the transaction has not committed")
        return tx.drawn_code

    def record_access(self, row: dict[str, Any]) -> None:
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("INSERT INTO access_log (dossier_code, actor_kind, account_id, agency_code, access, "
                        "document_id, as_of, request_id) VALUES (%(dossier_code)s, %(actor_kind)s, "
                        "%(account_id)s, %(agency_code)s, %(access)s, %(document_id)s, %(as_of)s, %(request_id)s)",
                        row)
