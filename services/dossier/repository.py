"""Persistence of the dossier service's write side, beside its event log.

What the application keeps besides events: content-addressed blobs and the documents that
name them, idempotency records of submissions, each agency's daily code counter, and the
access log. ``Repository`` is the port the application talks to; ``PgRepository`` keeps it
in PostgreSQL (``memory.MemoryStore`` keeps it in process, for tests that need no database).

A transaction (``transaction()``) is the application's unit of work. In PostgreSQL it
queues the writes whose results nobody reads (``PgTransaction.defer``) and sends them in one
round trip before the next read or the log append (``cursor``): the submit transaction holds
its agency's code counter until it commits, and every round trip saved there is throughput
for that agency.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from portal_common.db import Database, Prepared
from portal_common.prepared import statement_bytes
from services.dossier.domain.documents import Upload


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

    def claim_key(self, tx: Transaction, owner_id: str, key: str, request_hash: str) -> bool:
        """Record a new idempotency key; False when the owner used it already."""

    def key_record(self, tx: Transaction, owner_id: str, key: str) -> tuple[str, str | None] | None:
        """(request hash, dossier code or None) of an owner's idempotency key."""

    def bind_key(self, tx: Transaction, owner_id: str, key: str, code: str) -> None: ...

    def next_sequence(self, tx: Transaction, agency_code: str, day: dt.date) -> int:
        """The agency's next number of the day (no gaps: it rolls back with the transaction)."""

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

    def defer(self, sql: str, args: tuple | list) -> None:
        self._pending.append(statement_bytes(self._cur, sql, args))

    def flush(self) -> None:
        if self._pending:
            self._cur.execute(b";\n".join(self._pending))
            self._pending.clear()

    @property
    def cursor(self) -> Any:
        """The cursor; the queued writes go ahead of its next statement, in the same round trip
        (the statement's result is the one fetched, as only the last result of a round trip is)."""
        return self._sending if self._pending or self._commit else self._cur

    def commit_with_next(self) -> None:
        """Send ``COMMIT`` behind the next statement, in its round trip (see ``_SendingCursor``)."""
        self._commit = True


class _SendingCursor:
    """The transaction's cursor, whose next ``execute`` also sends the queued writes first."""

    def __init__(self, tx: PgTransaction):
        self._tx = tx

    def execute(self, sql: str | bytes, args: Any = None) -> None:
        tx = self._tx
        statement = statement_bytes(tx._cur, sql, args)
        batch = b";\n".join([*tx._pending, statement, *([b"COMMIT"] if tx._commit else [])])
        tx._pending.clear()
        if not tx._commit:
            tx._cur.execute(batch)
            return
        # Whatever breaks from here on may have broken after the commit: not safe to run again
        # (``Database.transaction`` reads the mark). The statement's own result is not returned.
        tx._commit = False
        tx._cur.connection.commit_sent = True
        tx._cur.execute(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx._cur, name)


class PgRepository:
    """``Repository`` in the service's PostgreSQL schema (tables of migrations/)."""

    def __init__(self, db: Database):
        self.db = db

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        with self.db.transaction(dict_rows=False) as cur:
            tx = PgTransaction(cur)
            yield tx
            tx.flush()

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

    def claim_key(self, tx: PgTransaction, owner_id: str, key: str, request_hash: str) -> bool:
        cur = tx.cursor
        cur.execute(Prepared("INSERT INTO idempotency_keys (owner_id, key, request_hash) VALUES (%s, %s, %s) "
                             "ON CONFLICT DO NOTHING RETURNING 1"), (owner_id, key, request_hash))
        return cur.fetchone() is not None

    def key_record(self, tx: PgTransaction, owner_id: str, key: str) -> tuple[str, str | None] | None:
        cur = tx.cursor
        cur.execute(Prepared("SELECT request_hash, code FROM idempotency_keys WHERE owner_id = %s AND key = %s"),
                    (owner_id, key))
        row = cur.fetchone()
        return None if row is None else (row[0], row[1])

    def bind_key(self, tx: PgTransaction, owner_id: str, key: str, code: str) -> None:
        tx.defer(Prepared("UPDATE idempotency_keys SET code = %s WHERE owner_id = %s AND key = %s"),
                 (code, owner_id, key))

    def next_sequence(self, tx: PgTransaction, agency_code: str, day: dt.date) -> int:
        # From here to the commit this agency's counter row is locked.
        cur = tx.cursor
        cur.execute(Prepared("INSERT INTO code_counters (agency_code, day, last_value) VALUES (%s, %s, 1) "
                             "ON CONFLICT (agency_code, day) DO UPDATE SET last_value = code_counters.last_value + 1 "
                             "RETURNING last_value"), (agency_code, day))
        return cur.fetchone()[0]

    def record_access(self, row: dict[str, Any]) -> None:
        with self.db.transaction(dict_rows=False) as cur:
            cur.execute("INSERT INTO access_log (dossier_code, actor_kind, account_id, agency_code, access, "
                        "document_id, as_of, request_id) VALUES (%(dossier_code)s, %(actor_kind)s, "
                        "%(account_id)s, %(agency_code)s, %(access)s, %(document_id)s, %(as_of)s, %(request_id)s)",
                        row)
