"""A small, offline renderer of the kustomize features ``deploy/k8s`` uses.

``kubectl kustomize`` is not on every machine that runs the tests, so this renders the
kustomizations in pure Python: ``resources`` (files and folders with a kustomization),
``namespace``, ``labels`` (metadata, and pod templates with ``includeTemplates``),
``images``, ``replicas`` and strategic-merge ``patches`` (by the patch's kind and name, or a
``target``). Anything else in a kustomization is refused with ``Unsupported`` rather than
silently ignored, so the output never differs from kustomize's without saying so;
``tests/deploy/test_k8s.py`` also compares it with ``kubectl kustomize`` where that exists.

``python -m deploy.kustomize deploy/k8s/overlays/production`` prints the manifests.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet"}
#: strategic-merge keys of the lists the patches here touch (others are replaced whole)
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name"}

Manifest = dict[str, Any]


class Unsupported(ValueError):
    """The kustomization uses something this renderer does not do."""


def _load_yaml(path: Path) -> list[Manifest]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise ValueError(f"{path}: not a Kubernetes object: {str(doc)[:80]}")
    return docs


def _kustomization_file(folder: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no kustomization in {folder}")


def render(folder: str | Path) -> list[Manifest]:
    """The manifests the kustomization in ``folder`` stands for, in resource order."""
    folder = Path(folder)
    spec = yaml.safe_load(_kustomization_file(folder).read_text()) or {}
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise Unsupported(f"{folder}: kustomization fields not supported here: {sorted(unknown)}")
    manifests: list[Manifest] = []
    for entry in spec.get("resources", []):
        path = (folder / entry).resolve()
        manifests.extend(render(path) if path.is_dir() else _load_yaml(path))
    _check_unique(manifests, folder)
    for patch in spec.get("patches", []):
        _apply_patch(manifests, patch, folder)
    if "namespace" in spec:
        for m in manifests:
            if m["kind"] not in CLUSTER_SCOPED:
                m["metadata"]["namespace"] = spec["namespace"]
    for label in spec.get("labels", []):
        _apply_labels(manifests, label)
    for image in spec.get("images", []):
        _apply_image(manifests, image)
    for replica in spec.get("replicas", []):
        _apply_replicas(manifests, replica)
    return manifests


def _key(m: Manifest) -> tuple[str, str, str]:
    return m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]


def _check_unique(manifests: list[Manifest], folder: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for m in manifests:
        if _key(m) in seen:
            raise ValueError(f"{folder}: {_key(m)} is declared twice")
        seen.add(_key(m))


def _apply_patch(manifests: list[Manifest], entry: dict[str, Any], folder: Path) -> None:
    if set(entry) - {"path", "patch", "target"}:
        raise Unsupported(f"patch options not supported: {sorted(set(entry) - {'path', 'patch', 'target'})}")
    patch = yaml.safe_load((folder / entry["path"]).read_text() if "path" in entry else entry["patch"])
    if not isinstance(patch, dict):
        raise Unsupported("only strategic-merge patches (a YAML object) are supported")
    target = entry.get("target") or {"kind": patch.get("kind"), "name": patch.get("metadata", {}).get("name")}
    if set(target) - {"kind", "name"}:
        raise Unsupported(f"patch targets by {sorted(set(target) - {'kind', 'name'})} are not supported")
    matched = [m for m in manifests
               if m["kind"] == target.get("kind") and m["metadata"]["name"] == target.get("name")]
    if not matched:
        raise ValueError(f"{folder}: the patch for {target} matches no resource")
    for m in matched:
        body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
        body["metadata"] = {k: v for k, v in body.get("metadata", {}).items() if k not in ("name", "namespace")}
        merged = strategic_merge(m, body)
        m.clear()
        m.update(merged)


def strategic_merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """``patch`` merged into ``base`` the way a strategic-merge patch does for the lists in
    ``MERGE_KEYS`` (merged by key), maps (merged; ``null`` deletes) and the rest (replaced)."""
    if isinstance(patch, dict) and "$patch" in patch:
        raise Unsupported("$patch directives are not supported")
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = copy.deepcopy(base)
        for item in patch:
            found = next((i for i, b in enumerate(out) if isinstance(b, dict) and b.get(key) == item.get(key)), None)
            if found is None:
                out.append(copy.deepcopy(item))
            else:
                out[found] = strategic_merge(out[found], item)
        return out
    return copy.deepcopy(patch)


def _pod_templates(m: Manifest) -> list[dict[str, Any]]:
    if m["kind"] in WORKLOADS:
        return [m["spec"]["template"]]
    if m["kind"] == "CronJob":
        return [m["spec"]["jobTemplate"]["spec"]["template"]]
    return []


def _apply_labels(manifests: list[Manifest], label: dict[str, Any]) -> None:
    if label.get("includeSelectors"):
        raise Unsupported("labels with includeSelectors are not supported")
    if set(label) - {"pairs", "includeSelectors", "includeTemplates"}:
        raise Unsupported(f"label options not supported: {sorted(label)}")
    pairs = label.get("pairs", {})
    for m in manifests:
        m["metadata"].setdefault("labels", {}).update(pairs)
        if label.get("includeTemplates"):
            for template in _pod_templates(m):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _split_image(image: str) -> tuple[str, str, str]:
    """(name, ":tag" or "", "@digest" or "")."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon:]
    return name, tag, f"@{digest}" if digest else ""


def _apply_image(manifests: list[Manifest], image: dict[str, Any]) -> None:
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise Unsupported(f"image options not supported: {sorted(image)}")
    for m in manifests:
        for template in _pod_templates(m):
            spec = template["spec"]
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                name, tag, digest = _split_image(container["image"])
                if name != image["name"]:
                    continue
                name = image.get("newName", name)
                if "digest" in image:
                    tag, digest = "", f"@{image['digest']}"
                elif "newTag" in image:
                    tag, digest = f":{image['newTag']}", ""
                container["image"] = f"{name}{tag}{digest}"


def _apply_replicas(manifests: list[Manifest], replica: dict[str, Any]) -> None:
    matched = [m for m in manifests if m["kind"] in SCALABLE and m["metadata"]["name"] == replica["name"]]
    if not matched:
        raise ValueError(f"replicas for {replica['name']!r}: no such Deployment or StatefulSet")
    for m in matched:
        m["spec"]["replicas"] = int(replica["count"])


def dump(manifests: list[Manifest]) -> str:
    return "".join("---\n" + yaml.safe_dump(m, sort_keys=False, width=120) for m in manifests)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m deploy.kustomize <folder with a kustomization.yaml>", file=sys.stderr)
        return 2
    sys.stdout.write(dump(render(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
