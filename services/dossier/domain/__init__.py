"""The dossier domain in plain Python: lifecycle state machine, drafts, access rules, working
days, codes, documents, the filing's hash.

Nothing here does I/O or reads configuration, so every rule can be tested exhaustively and
replayed from the log.
"""
