"""nameko entrypoints of the catalog service: each one line calling the application layer.

``service.py`` -> ``application/`` (``browsing``: reads; ``editing``: editors' commands;
transactions begin and end there) -> ``domain/`` (pure rules) -> ``repository.py`` (writes)
and ``queries.py`` (read models). ``places.py`` holds today's administrative units;
``seed.py`` and ``generate.py`` are tools that load a seed or a synthetic catalog.

Reads: ``search``, ``get_procedure``, ``procedure_history``, ``agencies_for``, ``agencies_by_ward``,
``get_agency``, ``resolve_agency``, ``list_agencies``, ``list_fields``, ``list_life_events``, ``get_life_event``,
``list_provinces``, ``get_province`` (with its wards).
Editor commands (each appends its event): ``publish_procedure``, ``draft_procedure``,
``publish_draft``, ``amend_procedure``,
``withdraw_procedure``, ``register_agency``, ``amend_agency``, ``dissolve_agency``,
``define_life_event``, ``amend_life_event``, ``retire_life_event``.
"""

from __future__ import annotations

from typing import Any

from portal_common.context import CallContext, event_context
from portal_common.entrypoints import rpc
from portal_common.health import HealthRpc
from portal_common.logs import LogContext
from portal_common.nameko_ext import EventLog, Outbox, Storage
from services.catalog.application import browsing, editing


class CatalogService(HealthRpc):
    name = "catalog"

    db = Storage()
    events = EventLog()
    outbox = Outbox()
    log_context = LogContext()
    call = CallContext()

    # -- reads -------------------------------------------------------------------------

    @rpc
    def search(self, q: str | None = None, field: str | None = None, target: str | None = None,
               level: str | None = None, online: str | None = None, agency: str | None = None,
               page: int = 1, page_size: int = 20) -> dict:
        return browsing.search(self.db, q, {"field": field, "target": target, "level": level, "online": online,
                                            "agency": agency}, page, page_size)

    @rpc
    def get_procedure(self, code: str, version: int | None = None, include_draft: bool = False) -> dict:
        return browsing.get_procedure(self.db, code, version, bool(include_draft))

    @rpc
    def procedure_history(self, code: str, include_draft: bool = False) -> list[dict]:
        return browsing.history(self.db, code, bool(include_draft))

    @rpc
    def agencies_for(self, procedure_code: str, province: Any = None, ward: Any = None) -> list[dict]:
        return browsing.agencies_for(self.db, procedure_code, province, ward)

    @rpc
    def agencies_by_ward(self, procedure_code: str, province: Any) -> dict:
        return browsing.agencies_by_ward(self.db, procedure_code, province)

    @rpc
    def get_agency(self, code: str) -> dict:
        return browsing.get_agency(self.db, code)

    @rpc
    def resolve_agency(self, code: str) -> dict:
        return browsing.resolve_agency(self.db, code)

    @rpc
    def list_agencies(self, q: str | None = None, province: Any = None, level: str | None = None,
                      include_dissolved: bool = False, page: int = 1, page_size: int = 20) -> dict:
        return browsing.list_agencies(self.db, q, province, level, include_dissolved, page, page_size)

    @rpc
    def list_fields(self) -> list[dict]:
        return browsing.fields_list(self.db)

    @rpc
    def list_life_events(self, target: str | None = None) -> list[dict]:
        return browsing.life_events(self.db, target)

    @rpc
    def get_life_event(self, event_id: str) -> dict:
        return browsing.life_event(self.db, event_id)

    @rpc
    def list_provinces(self) -> list[dict]:
        return browsing.provinces()

    @rpc
    def get_province(self, code: Any) -> dict:
        return browsing.wards(code)

    # -- editor commands ---------------------------------------------------------------

    @rpc
    def publish_procedure(self, procedure: dict, context: dict | None = None) -> dict:
        return editing.publish_procedure(self.db, self.events, procedure, event_context(context, self.call))

    @rpc
    def draft_procedure(self, procedure: dict, context: dict | None = None) -> dict:
        return editing.draft_procedure(self.db, self.events, procedure, event_context(context, self.call))

    @rpc
    def publish_draft(self, code: str, context: dict | None = None) -> dict:
        return editing.publish_draft(self.db, self.events, code, event_context(context, self.call))

    @rpc
    def amend_procedure(self, code: str, changes: dict, context: dict | None = None) -> dict:
        return editing.amend_procedure(self.db, self.events, code, changes, event_context(context, self.call))

    @rpc
    def withdraw_procedure(self, code: str, reason: str = "", context: dict | None = None) -> dict:
        return editing.withdraw_procedure(self.db, self.events, code, reason, event_context(context, self.call))

    @rpc
    def register_agency(self, agency: dict, context: dict | None = None) -> dict:
        return editing.register_agency(self.db, self.events, agency, event_context(context, self.call))

    @rpc
    def amend_agency(self, code: str, changes: dict, context: dict | None = None) -> dict:
        return editing.amend_agency(self.db, self.events, code, changes, event_context(context, self.call))

    @rpc
    def dissolve_agency(self, code: str, successor: str, dissolved_on: str | None = None,
                        reason: str = "", context: dict | None = None) -> dict:
        return editing.dissolve_agency(self.db, self.events, code, successor, dissolved_on, reason,
                                       event_context(context, self.call))

    @rpc
    def define_life_event(self, life_event: dict, context: dict | None = None) -> dict:
        return editing.define_life_event(self.db, self.events, life_event, event_context(context, self.call))

    @rpc
    def amend_life_event(self, event_id: str, changes: dict, context: dict | None = None) -> dict:
        return editing.amend_life_event(self.db, self.events, event_id, changes,
                                         event_context(context, self.call))

    @rpc
    def retire_life_event(self, event_id: str, reason: str = "", context: dict | None = None) -> dict:
        return editing.retire_life_event(self.db, self.events, event_id, reason, event_context(context, self.call))
