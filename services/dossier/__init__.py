"""The dossier service: the event-sourced lifecycle of a filed dossier.

Read top-down:

- ``service.py``: nameko entrypoints, one line each (RPC for the gateway, a timer that marks
  overdue dossiers, broadcast handlers of the catalog's events that empty the catalog cache);
- ``application/``: the use cases (``Dossiers``, ``Drafts``, the RPCs' input checks, the access
  log); transactions begin and end there; ``catalog_cache.py``: the catalog's answers to a
  submission's checks, cached per process;
- ``domain/``: pure rules: ``lifecycle`` (state machine over events), ``drafts``, ``access``
  (who may see and do what), ``filing`` (a filing's hash), ``calendar``, ``codes``, ``documents``;
- ``repository.py``: the write side besides the log (blobs, documents, idempotency keys, code
  counters, access log); ``queries.py``: the read models (projections, rebuilt from the log by
  ``ops.py rebuild``) and the queries over them; ``memory.py``: both in process;
- ``schemas.py``: the RPC boundary's own schemas (shared bodies are in
  ``portal_common.contracts.dossier``); ``migrations/``: the schema's tables.

A dossier's status is never stored as truth: it is the replay of its events.
"""
