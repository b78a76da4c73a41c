"""The Kubernetes manifests (deploy/k8s), rendered and validated offline.

Built-in kinds are checked against the Kubernetes OpenAPI schemas (``kubernetes-validate``,
strict: unknown fields fail), the operators' custom resources against the schemas vendored in
``deploy/k8s/schemas``. Then what the issue asks of them: every service, the gateway and the
web portal; probes on /health and /ready; requests and limits; autoscalers and disruption
budgets that point at real workloads; config and secrets by reference only.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy.kustomize import Unsupported, render
from deploy.launcher import SERVICE_CLASSES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE, PRODUCTION = K8S / "base", K8S / "overlays" / "production"
KUBERNETES_VERSION = "1.30.0"
CUSTOM_SCHEMAS = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster-rabbitmq.com-v1beta1.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cluster-postgresql.cnpg.io-v1.json",
}
#: every workload the portal runs, and its probe port (services: their METRICS_PORT)
WORKLOADS = {"identity": 9101, "catalog": 9102, "dossier": 9103, "router": 9104, "payment": 9105,
             "gateway": 8000, "web": 8080}
STATELESS = {"gateway", "web", "catalog", "identity", "dossier", "router", "payment"}


def validate(manifest: dict[str, Any]) -> None:
    """Raise when ``manifest`` does not validate against its kind's schema."""
    custom = CUSTOM_SCHEMAS.get((manifest.get("apiVersion"), manifest.get("kind")))
    if custom:
        jsonschema.validate(manifest, json.loads((K8S / "schemas" / custom).read_text()))
    else:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module", params=["base", "production"])
def manifests(request) -> list[dict[str, Any]]:
    return render(BASE if request.param == "base" else PRODUCTION)


def by_kind(manifests: list[dict], kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def test_every_manifest_validates_offline(manifests):
    assert len(manifests) > 20
    for manifest in manifests:
        try:
            validate(manifest)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc.message}")


@pytest.mark.parametrize(("kind", "name", "break_it"), [
    ("Deployment", "dossier", lambda m: m["spec"].__setitem__("replicas", "two")),
    ("Deployment", "gateway", lambda m: containers(m)[0].__setitem__("livenessprobe", {})),  # a typo
    ("HorizontalPodAutoscaler", "web", lambda m: m["spec"].pop("scaleTargetRef")),
    ("PodDisruptionBudget", "catalog", lambda m: m["spec"].__setitem__("minAvailabe", 1)),
    ("RabbitmqCluster", "portal-mq", lambda m: m["spec"].__setitem__("replicas", "3")),
    ("RabbitmqCluster", "portal-mq", lambda m: m["spec"].__setitem__("replica", 3)),
    ("Cluster", "portal-db", lambda m: m["spec"].__setitem__("instances", 0)),
    ("Cluster", "portal-db", lambda m: m["spec"]["storage"].__setitem__("size", "fifty gigs")),
])
def test_a_broken_manifest_fails_validation(kind, name, break_it):
    manifest = copy.deepcopy(by_kind(render(BASE), kind)[name])
    validate(manifest)  # as written: valid
    break_it(manifest)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(manifest)


def test_every_service_the_gateway_and_the_web_portal_have_a_deployment(manifests):
    deployments = by_kind(manifests, "Deployment")
    assert set(SERVICE_CLASSES) | {"payment", "web"} <= set(deployments)
    assert set(WORKLOADS) == set(deployments)
    for name, target in SERVICE_CLASSES.items():
        assert containers(deployments[name])[0]["command"][-1] == target, name
    assert containers(deployments["web"])[0]["command"] == ["python", "-m", "portal"]


def _port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


def test_probes_resources_and_ports(manifests):
    for name, deployment in by_kind(manifests, "Deployment").items():
        [container] = containers(deployment)
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        assert live["path"] == "/health", name
        assert ready["path"] == ("/health" if name == "web" else "/ready"), name
        assert _port_number(container, live["port"]) == _port_number(container, ready["port"]) == WORKLOADS[name]
        env = {e["name"]: e for e in container.get("env", [])}
        if name in WORKLOADS and name not in ("gateway", "web"):
            assert env["METRICS_PORT"]["value"] == str(WORKLOADS[name]), name
            assert env["SERVICE_NAME"]["value"] == name
        assert env["INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", name
    for workload in [*by_kind(manifests, "Deployment").values(), *by_kind(manifests, "Job").values()]:
        for container in containers(workload):
            for side in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][side]), workload["metadata"]["name"]


def _pod_labels(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_autoscalers_budgets_and_services_point_at_real_workloads(manifests):
    deployments = by_kind(manifests, "Deployment")
    hpas = by_kind(manifests, "HorizontalPodAutoscaler")
    assert set(hpas) >= STATELESS
    for name, hpa in hpas.items():
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) == ("Deployment", name)
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    budgets = by_kind(manifests, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= _pod_labels(deployment).items(), name
        assert deployment["spec"]["selector"]["matchLabels"].items() <= _pod_labels(deployment).items()
    assert budgets["portal-mq"]["spec"]["maxUnavailable"] == 1
    for name, service in by_kind(manifests, "Service").items():
        target = deployments[name]
        assert service["spec"]["selector"].items() <= _pod_labels(target).items(), name
        names = {p["name"] for p in containers(target)[0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names, name


def test_config_and_secrets_are_referenced_not_inlined(manifests):
    config_maps, secrets = by_kind(manifests, "ConfigMap"), by_kind(manifests, "Secret")
    [broker] = by_kind(manifests, "RabbitmqCluster").values()
    [database] = by_kind(manifests, "Cluster").values()
    # the operators make these two: the broker's default user and the database owner's
    made_by_operators = {f"{broker['metadata']['name']}-default-user", f"{database['metadata']['name']}-app"}
    for workload in [*by_kind(manifests, "Deployment").values(), *by_kind(manifests, "Job").values()]:
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for env in container.get("env", []):
                if "value" in env:  # a literal: never a secret (a file or folder of them is fine)
                    secretive = any(word in env["name"] for word in ("SECRET", "PASSWORD", "PASSPHRASE", "KEY"))
                    assert not secretive or env["name"].endswith(("_DIR", "_FILE")), env
                    continue
                ref = env["valueFrom"].get("secretKeyRef")
                if ref:
                    assert ref["name"] in set(secrets) | made_by_operators, ref
                    if ref["name"] in secrets:
                        assert ref["key"] in secrets[ref["name"]]["stringData"], ref
            env = {e["name"]: e for e in container.get("env", [])}
            if "AMQP_URI" in env:
                assert f"@{broker['metadata']['name']}:5672/" in env["AMQP_URI"]["value"]
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
    for secret in secrets.values():  # placeholders only, never a real value
        assert set(secret["stringData"].values()) == {"REPLACE-ME"}, secret["metadata"]["name"]
    for config_map in config_maps.values():
        assert not any(word in key for key in config_map["data"] for word in ("SECRET", "PASSWORD", "API_KEY"))
    assert config_maps["portal-config"]["data"]["LOCAL_ADAPTERS"] == "no"


def test_rabbitmq_and_postgresql_come_from_their_operators(manifests):
    [broker] = by_kind(manifests, "RabbitmqCluster").values()
    assert broker["spec"]["replicas"] == 3
    assert "default_queue_type = quorum" in broker["spec"]["rabbitmq"]["additionalConfig"]
    [database] = by_kind(manifests, "Cluster").values()
    assert database["spec"]["instances"] >= 2  # a primary and replicas
    assert not [m for m in manifests if m["kind"] == "StatefulSet"]
    [job] = by_kind(manifests, "Job").values()
    assert containers(job)[0]["command"] == ["python", "-m", "deploy.local", "migrate"]


def test_the_production_overlay():
    base = {(m["kind"], m["metadata"]["name"]): m for m in render(BASE)}
    production = {(m["kind"], m["metadata"]["name"]): m for m in render(PRODUCTION)}
    assert set(base) == set(production)
    assert {m["metadata"].get("namespace") for m in production.values()} == {"portal"}
    images = {c["image"] for m in production.values() if m["kind"] in ("Deployment", "Job") for c in containers(m)}
    assert images == {"registry.example.org/portal/backend:2026.12.05"}
    assert production[("Deployment", "gateway")]["spec"]["replicas"] == 3
    assert production[("HorizontalPodAutoscaler", "gateway")]["spec"]["minReplicas"] == 3
    dossier = containers(production[("Deployment", "dossier")])[0]
    assert dossier["resources"]["requests"]["cpu"] == "500m"
    assert dossier["livenessProbe"] == containers(base[("Deployment", "dossier")])[0]["livenessProbe"]


def _millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


@pytest.mark.parametrize("folder", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_background_consumers_weigh_less_than_the_filing_path(folder):
    """On a shared node the kernel splits the CPU by request: the router and identity (at nice
    10 under ``make up``) ask for less than the gateway and the dossier service."""
    requests = {m["metadata"]["name"]: _millicores(containers(m)[0]["resources"]["requests"]["cpu"])
                for m in render(folder) if m["kind"] == "Deployment"}
    assert max(requests["router"], requests["identity"]) * 4 <= min(requests["gateway"], requests["dossier"])


def test_the_renderer_agrees_with_kubectl_kustomize_where_it_is_installed():
    """The pure-Python renderer against the real kustomize (kubectl ships it), both folders."""
    kubectl = shutil.which("kubectl")
    for folder in (BASE, PRODUCTION):
        mine = {(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]): m for m in render(folder)}
        assert mine
        if kubectl is None:
            continue
        out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60,
                             check=True).stdout
        theirs = {(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"]): m
                  for m in yaml.safe_load_all(out) if m}
        assert mine == theirs, folder


def test_the_renderer_refuses_what_it_does_not_do(tmp_path):
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\ncommonLabels: {a: b}\n")
    with pytest.raises(Unsupported, match="commonLabels"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches:\n- patch: |\n    apiVersion: v1\n    kind: ConfigMap\n"
        "    metadata: {name: nobody}\n    data: {a: b}\n")
    with pytest.raises(ValueError, match="matches no resource"):
        render(tmp_path)
