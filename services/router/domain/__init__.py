"""The router's rules in plain Python, no I/O: each can be checked without a broker or a database.

``routing``: which agency a dossier event goes to (successors followed), the delivery's id,
body and queue names. ``retry``: when a failed delivery is tried again, and when given up.
``signing``: the bytes a delivery is sent as and the HMAC headers of a signed callback.
"""
