"""The catalog's rules in plain Python, no I/O: each module raises the typed errors of
``portal_common.errors`` and never touches the database.

``codes``: what can name an entry. ``procedures``, ``agencies``, ``life_events``: what an
editor's change means for each kind of entry. ``search``: what a search asks of PostgreSQL
and the pages it answers with.
"""
