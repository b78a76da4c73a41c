"""The catalog's use cases, one module per group: ``browsing`` (the reads the portal and the
other services ask) and ``editing`` (editors' changes, each appending its event).
Transactions begin and end here; input is checked here with the boundary schemas of
``portal_common.contracts.catalog``.
"""
