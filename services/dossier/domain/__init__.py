"""The dossier domain in plain Python: lifecycle state machine, working days, codes.

Nothing here does I/O, so every rule can be tested exhaustively and replayed from the log.
"""
