"""Chaos suite: no dossier is lost or doubled when PostgreSQL, RabbitMQ or a service fails
under load.

Everything runs on a private PostgreSQL cluster and a private RabbitMQ node (``infra.py``;
the machine's shared servers are never touched), reached by the services only through TCP
fault proxies (``proxy.py``). Clients file dossiers through the gateway with an
Idempotency-Key each and retry the same key on connection errors and 5xx; an agency actor
receives what its queue delivered (``workload.py``); a fault is injected into the stream
(``scenarios.py``); once the system settled, ``invariants.py`` checks filings (exactly
once), code sequences (no gap), deliveries (exactly once by delivery id), applicant notices
(once each) and projections (equal to their rebuild).

- short form, part of ``make test``: ``pytest tests/chaos`` (test_chaos_short.py: a
  PostgreSQL restart, a SIGKILL of the router and a RabbitMQ restart in one stream);
- full form: ``python -m tests.chaos [--filings 300 --clients 10] [-s FAULT ...]`` or
  ``make chaos``: each fault on its own fresh system, then a table; exit 1 on a violation.
"""
