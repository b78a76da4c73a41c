"""Services reach the operator tools through their registrations; the library imports none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from portal_common import migrations, registry

ROOT = Path(__file__).resolve().parents[2]


def test_every_service_registers_through_its_entry_point():
    found = {r.service: r for r in registry.registrations()}
    assert set(found) == {"identity", "catalog", "dossier", "router", "payment"}
    assert registry.services() == ("catalog", "dossier", "identity", "payment", "router")
    assert {name: r.metrics_port for name, r in found.items()} == {
        "identity": 9101, "catalog": 9102, "dossier": 9103, "router": 9104, "payment": 9105}
    assert found["router"].dossier_records.section == "deliveries"
    assert {g.name for g in found["dossier"].gauges} == {"portal_dossiers", "portal_dossiers_overdue"}
    assert {g.name for g in found["router"].gauges} == {
        "portal_deliveries", "portal_dead_letters", "portal_subscriptions", "portal_subscription_lag_entries",
        "portal_subscription_lag_seconds", "portal_subscription_dead_letters", "portal_subscription_failing"}
    assert registry.find("no-such-service") is None
    assert dict(migrations.SERVICES) == {name: f"services.{name}" for name in found}  # the launcher's list


def test_the_registered_log_fields_name_the_dossier():
    dossier = registry.find("dossier")
    assert dossier.log_fields({"code": "HS-260101-0001", "other": 1}) == {"dossier_code": "HS-260101-0001"}
    assert dossier.log_fields({"other": 1}) == {}


def test_importing_the_library_imports_no_service():
    probe = ("import sys, portal_common.ops, portal_common.metrics, portal_common.logs, portal_common.outbox; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('services', 'gateway')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
