"""The dossier service: the event-sourced lifecycle of a filed dossier.

Read top-down:

- ``service.py``: nameko entrypoints (RPC for the gateway, a timer that marks overdue dossiers,
  broadcast handlers of the catalog's events that empty the catalog cache);
- ``commands.py``: what each RPC does (catalog checks at submission, document decoding, views);
  ``draft_commands.py``: the same for drafts (saved before filing, filed once);
- ``catalog_cache.py``: the catalog's answers to a submission's checks (procedure version,
  agencies for an area), cached per process, dropped on the catalog's events, with a TTL;
- ``domain/``: pure rules: ``lifecycle`` (state machine over events), ``drafts`` (the draft's
  own small one), ``calendar`` (working days), ``codes`` (dossier codes), ``documents``
  (size / type checks);
- ``repository.py``: commands and queries over PostgreSQL (optimistic concurrency on each
  dossier's stream ``dossier-<code>``, idempotency keys, code counters, content-addressed blobs);
  ``drafts.py``: drafts on streams ``draft-<uuid>``;
- ``projections.py``: the read models (status by code, owner's list, agency queue, overdue
  list, owner's drafts), updated in each command's transaction and rebuildable from the log
  (``ops.py rebuild``);
- ``access_log.py``: every read of a dossier by agency staff (full view, document), in an
  append-only table; the owner's and the operators' views of it;
- ``schemas.py``: marshmallow schemas of every RPC input; ``migrations/``: the schema's tables.

A dossier's status is never stored as truth: it is the replay of its events.
"""
