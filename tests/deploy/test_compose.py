"""docker-compose.yml, checked without Docker: it must run the same processes as the local
launcher (deploy/launcher.py), wire them to its own broker and database, start them in a
sane order behind healthchecks, and expose the metrics ports Prometheus scrapes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from deploy.launcher import BACKGROUND_NICE, SERVICE_CLASSES
from portal_common.metrics import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
LAUNCHED = list(SERVICE_CLASSES)  # identity, catalog, dossier, router, gateway
INFRA = ("postgres", "rabbitmq")


def _command(name: str) -> list[str]:
    cmd = SERVICES[name].get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def _env(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _depends(name: str) -> dict[str, str]:
    deps = SERVICES[name].get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def _published(name: str) -> dict[int, str]:
    """container port -> the host part of its published mapping."""
    out = {}
    for spec in SERVICES[name].get("ports") or []:
        parts = str(spec).split(":")
        out[int(parts[-1].split("/")[0])] = ":".join(parts[:-1])
    return out


def test_conftest_names_and_the_launcher_services_are_all_there():
    for name in (*INFRA, "migrate", *LAUNCHED, "prometheus", "grafana"):
        assert name in SERVICES, name


@pytest.mark.parametrize("name", LAUNCHED)
def test_each_service_runs_the_launchers_nameko_command(name):
    folder = "gateway" if name == "gateway" else f"services/{name}"
    assert _command(name) == ["python", "-m", "nameko", "run", "--config", f"{folder}/config.yml",
                              SERVICE_CLASSES[name]]
    assert (ROOT / folder / "config.yml").is_file()
    assert SERVICES[name].get("build") in (".", {"context": "."})


@pytest.mark.parametrize("name", [*LAUNCHED, "migrate"])
def test_each_process_talks_to_the_composed_broker_and_database(name):
    env = _env(name)
    db, mq = urlparse(env["DATABASE_URL"]), urlparse(env["AMQP_URI"])
    assert (db.scheme, db.hostname, db.port or 5432) == ("postgresql", "postgres", 5432)
    assert db.password == SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert db.path == "/" + SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    assert (mq.scheme, mq.hostname, mq.port or 5672) == ("amqp", "rabbitmq", 5672)


def test_migrate_is_a_one_shot_job_the_services_wait_for():
    assert _command("migrate") == ["python", "-m", "deploy.local", "migrate"]
    assert SERVICES["migrate"].get("restart", "no") == "no"
    assert _depends("migrate") == {"postgres": "service_healthy", "rabbitmq": "service_healthy"}
    for name in LAUNCHED:
        assert _closure(name) >= {"migrate", *INFRA}, name
    for name in LAUNCHED[:-1]:
        assert _depends(name)["migrate"] == "service_completed_successfully"


@pytest.mark.parametrize("name", [n for n in LAUNCHED if n != "gateway"])
def test_services_expose_metrics_on_their_port_and_check_health_there(name):
    env = _env(name)
    assert env["METRICS_PORT"] == str(DEFAULT_PORTS[name])
    assert env.get("METRICS_HOST", "0.0.0.0") == "0.0.0.0"  # scraped from the prometheus container
    check = " ".join(SERVICES[name]["healthcheck"]["test"])
    assert "/health" in check and ("METRICS_PORT" in check or env["METRICS_PORT"] in check)


def test_gateway_listens_on_8000_on_all_interfaces_and_waits_for_every_service():
    env = _env("gateway")
    assert (env["GATEWAY_HOST"], env["GATEWAY_PORT"]) == ("0.0.0.0", "8000")
    assert 8000 in _published("gateway")
    assert _depends("gateway") == dict.fromkeys(LAUNCHED[:-1], "service_healthy")
    check = " ".join(SERVICES["gateway"]["healthcheck"]["test"])
    assert "8000/health" in check


def test_rabbitmq_has_the_management_plugin_and_both_infra_services_publish_their_ports():
    assert "management" in SERVICES["rabbitmq"]["image"]
    assert {5672, 15672} <= set(_published("rabbitmq"))
    assert 5432 in _published("postgres")  # pytest-docker's port_for("postgres", 5432)


def test_published_ports_listen_on_loopback_only():
    for name, service in SERVICES.items():
        for port, host in _published(name).items():
            assert host.startswith("127.0.0.1:"), f"{name}:{port} is published on every interface"


def test_depends_on_targets_exist_conditions_are_backed_by_healthchecks_and_there_is_no_cycle():
    for name in SERVICES:
        for dep, condition in _depends(name).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep} to be healthy, it has no healthcheck"
        assert name not in _closure(name), f"{name} depends on itself"


@pytest.mark.parametrize("name", [*INFRA, *LAUNCHED])
def test_healthchecks_are_well_formed(name):
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    for key in ("interval", "timeout"):
        assert re.fullmatch(r"\d+(ms|s|m)", check[key]), key
    assert int(check["retries"]) >= 3


def test_long_running_processes_restart_and_keep_their_data():
    for name in LAUNCHED:
        assert SERVICES[name].get("restart") in ("unless-stopped", "always", "on-failure")
    volumes = COMPOSE.get("volumes") or {}
    assert any(v.split(":")[1] == "/var/lib/postgresql/data" and v.split(":")[0] in volumes
               for v in SERVICES["postgres"]["volumes"])


def test_monitoring_mounts_the_files_of_deploy_monitoring():
    volumes = SERVICES["prometheus"]["volumes"] + SERVICES["grafana"]["volumes"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in volumes if v.startswith("./")}
    assert mounts["./deploy/monitoring/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["./deploy/monitoring/grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./deploy/monitoring/grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    assert "./deploy/monitoring/grafana/dashboards" in mounts


def _monitoring(path: str) -> Path:
    """A file of deploy/monitoring; the tree holds them all, so a missing one fails."""
    file = ROOT / "deploy" / "monitoring" / path
    assert file.is_file(), f"deploy/monitoring/{path} is missing"
    return file


def test_prometheus_scrapes_every_service_where_compose_serves_its_metrics():
    config = yaml.safe_load(_monitoring("prometheus.yml").read_text())
    targets = {t for job in config.get("scrape_configs", []) for sc in job.get("static_configs", [])
               for t in sc.get("targets", [])}
    for name in LAUNCHED[:-1]:
        assert f"{name}:{_env(name)['METRICS_PORT']}" in targets, name
    assert "gateway:8000" in targets


def test_grafana_provisioning_points_at_the_mounted_folders():
    datasources = yaml.safe_load(_monitoring("grafana/provisioning/datasources/prometheus.yml").read_text())
    urls = [d.get("url", "") for d in datasources.get("datasources", [])]
    assert any(urlparse(u).hostname == "prometheus" for u in urls), urls
    dashboards = yaml.safe_load(_monitoring("grafana/provisioning/dashboards/portal.yml").read_text())
    paths = [p.get("options", {}).get("path") for p in dashboards.get("providers", [])]
    mounted = {v.split(":")[1] for v in SERVICES["grafana"]["volumes"]
               if v.startswith("./deploy/monitoring/grafana/dashboards")}
    assert any(p and any(p.rstrip("/").startswith(m) for m in mounted) for p in paths), (paths, mounted)
    assert _monitoring("grafana/dashboards/portal.json").stat().st_size > 0


def test_dockerfile_copies_every_package_and_dockerignore_keeps_them():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY\s+(\S+)", dockerfile, flags=re.M))
    for package in ("portal_common", "services", "gateway", "deploy", "pyproject.toml"):
        assert package in copied, package
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not ignored & {"portal_common", "services", "gateway", "deploy", "pyproject.toml"}
    assert {".git", ".venv"} <= ignored
    assert re.search(r"^USER\s+(?!root)\S+", dockerfile, flags=re.M), "the image runs as root"


def _closure(name: str, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    for dep in _depends(name):
        if dep not in seen:
            seen.add(dep)
            _closure(dep, seen)
    return seen


def test_the_log_consumers_get_a_smaller_cpu_weight_as_make_up_gives_them_a_lower_priority():
    for name in LAUNCHED:
        shares = SERVICES[name].get("cpu_shares", 1024)
        if name in BACKGROUND_NICE:
            assert shares < 1024, name
        else:
            assert shares == 1024, name
