"""Schema migrations: the event log (and timer-tick table) every service has, then the
service's own SQL files.

A service's migrations are the files ``NNN_name.sql`` in its ``migrations`` folder, applied in
name order inside one transaction each and recorded in ``<schema>.schema_migrations``. An
advisory lock keeps two starting processes from migrating the same schema at once.
"""

from __future__ import annotations

import zlib
from importlib import resources
from pathlib import Path

from portal_common import registry, ticks
from portal_common.db import connect, ensure_database
from portal_common.eventstore import ddl


def _migration_files(package: str | None) -> list[tuple[str, str]]:
    if not package:
        return []
    try:
        folder = resources.files(package).joinpath("migrations")
    except ModuleNotFoundError:
        return []
    if not folder.is_dir():
        return []
    files = sorted((f.name, f.read_text()) for f in folder.iterdir() if f.name.endswith(".sql"))
    return files


def migrate(dsn: str, schema: str, package: str | None = None, create_database: bool = True) -> list[str]:
    """Bring ``schema`` up to date; returns the names of the migrations it applied."""
    if create_database:
        ensure_database(dsn)
    conn = connect(dsn, schema, application_name=f"migrate-{schema}")
    applied: list[str] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (zlib.crc32(f"migrate:{schema}".encode()),))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute(ddl(schema))
            cur.execute(ticks.ddl(schema))  # timers' per-tick claims (portal_common.ticks)
            conn.commit()
            cur.execute(f"SELECT name FROM {schema}.schema_migrations")
            done = {r[0] for r in cur.fetchall()}
            for name, sql in _migration_files(package):
                if name in done:
                    continue
                cur.execute(sql)
                cur.execute(f"INSERT INTO {schema}.schema_migrations (name) VALUES (%s)", (name,))
                conn.commit()
                applied.append(name)
            cur.execute("SELECT pg_advisory_unlock_all()")
            conn.commit()
    finally:
        conn.close()
    return applied


# Every registered service's package by name (its schema has the same name).
SERVICES = registry.Lookup("package")


def migrate_all(dsn_for: dict[str, str] | None = None, default_dsn: str | None = None) -> dict[str, list[str]]:
    """Migrate every service's schema (each to its own DSN when given)."""
    from portal_common import config

    result = {}
    for service, package in SERVICES.items():
        dsn = (dsn_for or {}).get(service) or default_dsn or config.database_url(service)
        result[service] = migrate(dsn, service, package)
    return result


def sql_path(package: str) -> Path:
    """The folder holding a service's migrations (for tooling and docs)."""
    return Path(str(resources.files(package).joinpath("migrations")))
