"""The citizen web portal: server-rendered pages over the gateway's public HTTP API.

It is a front end like any other: it reaches the system only through the gateway's public
contract (``docs/API.md``), never through a service or the shared library, so everything a
citizen can do here proves the contract is enough. Pages work without JavaScript; texts are
in one gettext catalogue (Vietnamese first, English on request).

Environment: ``PORTAL_GATEWAY_URL`` (``http://127.0.0.1:8000``), ``PORTAL_PORT`` (8080),
``PORTAL_HOST`` (127.0.0.1), ``PORTAL_PUBLIC_URL`` (the address printed in QR codes; by default
the address the request came in on), ``PORTAL_MAX_UPLOAD_BYTES`` (5 MiB per document),
``PORTAL_SESSION_TTL`` (seconds of idle time before a session ends, 7200),
``PORTAL_SESSION_DATABASE_URL`` (PostgreSQL for sessions shared by every portal process; empty:
this process's memory),
``PORTAL_THREADS`` (waitress worker threads, 8).
"""
