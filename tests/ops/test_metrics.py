"""Every service's operator surface over HTTP (/metrics, /health, /ready on its metrics port),
the figures the issue names, and the monitoring configuration: the Grafana dashboard parses
and every panel's metric is one the running system exports."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from portal_common.metrics import DEFAULT_PORTS, Source, metrics_port

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
SERVICES = ("identity", "catalog", "dossier", "router")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ports(gateway_url) -> dict[str, int]:
    ready = requests.get(f"{gateway_url}/ready", timeout=30).json()
    out = {name: ready["services"][name]["metrics_port"] for name in SERVICES}
    assert all(isinstance(p, int) and p > 0 for p in out.values()), out
    return out


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def _value(samples, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= set(lab))


def _has(samples, name: str, **labels) -> bool:
    wanted = set(labels.items())
    return any(n == name and wanted <= set(lab) for (n, lab) in samples)


def test_each_service_serves_health_and_readiness(ports):
    for name, port in ports.items():
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok", "service": name}
        ready = requests.get(f"http://127.0.0.1:{port}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": True, "broker": True}
        assert requests.get(f"http://127.0.0.1:{port}/nothing", timeout=10).status_code == 404


def test_each_service_exports_its_figures(ports):
    for name, port in ports.items():
        samples = _scrape(f"http://127.0.0.1:{port}/metrics")
        assert _value(samples, "portal_rpc_calls_total", service=name, method="health", outcome="ok") >= 1, name
        assert _value(samples, "portal_rpc_call_seconds_count", service=name, method="health") >= 1, name
        assert _has(samples, "portal_events_appended_total", service=name), name
        assert _has(samples, "portal_events_published_total", service=name), name
        assert _has(samples, "portal_outbox_backlog_events", service=name), name
        assert _has(samples, "portal_outbox_oldest_age_seconds", service=name), name
    catalog = _scrape(f"http://127.0.0.1:{ports['catalog']}/metrics")
    appended = _value(catalog, "portal_events_appended_total", service="catalog")
    assert appended > 0  # the seed's events
    by_type = {dict(lab)["event_type"]: v for (n, lab), v in catalog.items()
               if n == "portal_events_total" and dict(lab).get("service") == "catalog"}
    assert by_type.get("ProcedurePublished", 0) > 0 and by_type.get("AgencyRegistered", 0) > 0
    assert sum(by_type.values()) <= appended  # positions may have gaps, never fewer than the events
    again = _scrape(f"http://127.0.0.1:{ports['catalog']}/metrics")  # incremental counting adds nothing twice
    assert _value(again, "portal_events_total", service="catalog") == sum(by_type.values()) or _value(
        again, "portal_events_appended_total", service="catalog") > appended
    router = _scrape(f"http://127.0.0.1:{ports['router']}/metrics")
    assert _has(router, "portal_consumer_lag_messages", service="router",
                queue="evt-dossier-DossierSubmitted--router.on_submitted")
    assert _value(router, "portal_consumers", service="router",
                  queue="evt-dossier-DossierSubmitted--router.on_submitted") >= 1
    assert _has(router, "portal_deliveries", service="router", status="dead")
    assert _has(router, "portal_dead_letters", service="router")
    dossier = _scrape(f"http://127.0.0.1:{ports['dossier']}/metrics")
    assert _has(dossier, "portal_dossiers_overdue")
    # each service's pools, by the attribute that holds them: open connections by state, and size
    for name, pools in (("dossier", ("events",)), ("catalog", ("db", "events")), ("router", ("router",))):
        samples = dossier if name == "dossier" else catalog if name == "catalog" else router
        for pool in pools:
            size = _value(samples, "portal_db_pool_size", service=name, pool=pool)
            idle = _value(samples, "portal_db_pool_connections", service=name, pool=pool, state="idle")
            borrowed = _value(samples, "portal_db_pool_connections", service=name, pool=pool, state="borrowed")
            assert size >= 1 and 1 <= idle + borrowed <= size, (name, pool, size, idle, borrowed)


def test_rpc_counts_and_latency_follow_the_calls(ports, gateway_url):
    url = f"http://127.0.0.1:{ports['dossier']}/metrics"
    before = _scrape(url)
    for _ in range(3):
        assert requests.get(f"{gateway_url}/api/v1/lookup/HS-000000-9999", timeout=30).status_code == 404
    refused = ("portal_rpc_calls_total", dict(service="dossier", method="lookup", outcome="refused"))
    deadline = time.monotonic() + 20  # a service counts a call just after answering it
    while True:
        after = _scrape(url)
        if _value(after, refused[0], **refused[1]) - _value(before, refused[0], **refused[1]) >= 3 \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert _value(after, refused[0], **refused[1]) - _value(before, refused[0], **refused[1]) >= 3
    count = "portal_rpc_call_seconds_count"
    assert _value(after, count, service="dossier", method="lookup") - _value(
        before, count, service="dossier", method="lookup") >= 3
    gateway = _scrape(f"{gateway_url}/metrics")
    assert _value(gateway, "gateway_http_requests_total", route="/api/v1/lookup/<code>", status="404") >= 3


def test_readiness_reports_a_missing_database():
    source = Source("probe", "postgresql://postgres@127.0.0.1:1/nothing", "probe", None, [])
    try:
        assert source.ready() == {"database": False}
    finally:
        source.close()


def test_metrics_port_settings(monkeypatch):
    monkeypatch.delenv("METRICS_PORT", raising=False)
    monkeypatch.delenv("DOSSIER_METRICS_PORT", raising=False)
    assert metrics_port("dossier") == DEFAULT_PORTS["dossier"] == 9103
    assert [DEFAULT_PORTS[s] for s in SERVICES] == [9101, 9102, 9103, 9104]
    monkeypatch.setenv("METRICS_PORT", "0")
    assert metrics_port("router") == 0
    monkeypatch.setenv("DOSSIER_METRICS_PORT", "off")
    assert metrics_port("dossier") is None


# -- monitoring configuration ------------------------------------------------------------

_METRIC = re.compile(r"\b((?:portal|gateway)_[a-z0-9_]+)\b")


def _exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(s.name for s in family.samples)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "summary": ["_sum", "_count"]}.get(family.type, [""])
        names.update(family.name + s for s in suffixes)
    return names


def test_dashboard_parses_and_every_panel_metric_is_exported(ports, gateway_url):
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "portal.json").read_text())
    exported = _exported_names(requests.get(f"{gateway_url}/metrics", timeout=30).text)
    for port in ports.values():
        exported |= _exported_names(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:  # laid out on Grafana's 24-column grid without overlaps
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(pos["x"] + i, pos["y"] + j) for i in range(pos["w"]) for j in range(pos["h"])}
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    used = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "portal-prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(_METRIC.findall(target["expr"]))
            assert names, f"panel {panel['title']!r} queries no portal metric: {target['expr']}"
            missing = names - exported
            assert not missing, f"panel {panel['title']!r} uses metrics nobody exports: {missing}"
            used |= names
    for figure in ("gateway_http_requests_total", "portal_rpc_calls_total", "portal_rpc_call_seconds_bucket",
                   "portal_events_appended_total", "portal_events_published_total", "portal_events_total",
                   "portal_outbox_backlog_events",
                   "portal_outbox_oldest_age_seconds", "portal_consumer_lag_messages", "portal_deliveries",
                   "portal_dead_letters", "portal_dossiers", "portal_dossiers_overdue", "portal_db_pool_connections",
                   "portal_db_pool_size"):
        assert figure in used, f"no panel shows {figure}"


def test_scrape_config_and_grafana_provisioning():
    prometheus = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    assert targets == {"gateway:8000", "identity:9101", "catalog:9102", "dossier:9103", "router:9104", "payment:9105"}
    datasources = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
                                 .read_text())
    [source] = datasources["datasources"]
    assert source["uid"] == "portal-prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards" / "portal.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
