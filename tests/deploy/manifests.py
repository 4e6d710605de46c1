"""Helpers for the offline deployment checks: paths, tools, rendering and loading manifests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
TOOLS_VENV = REPO / ".venv-deploy"
# The CloudNativePG CRD is shared data, kept beside the repository (../shared/k8s/crds).
CRDS = REPO.parent / "shared" / "k8s" / "crds"
CLUSTER_CRD = CRDS / "postgresql.cnpg.io_clusters.yaml"
POOLER_CRD = CRDS / "postgresql.cnpg.io_poolers.yaml"

OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
# The Kubernetes versions the manifests must be valid for (oldest and newest we support).
KUBERNETES_VERSIONS = ["1.30.0", "1.34.0"]

Manifest = dict[str, Any]


def find_tool(name: str) -> str | None:
    """The tool from .venv-deploy, else from the running interpreter's venv, else from PATH."""
    for folder in (TOOLS_VENV / "bin", Path(sys.executable).parent):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool without a shell, capturing its output as text, with a generous time bound."""
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def render(kubectl: str, directory: Path) -> str:
    """`kubectl kustomize DIR` as YAML text; a failure shows Kustomize's own message."""
    result = run([kubectl, "kustomize", str(directory)])
    assert result.returncode == 0, f"kustomize failed for {directory.name}:\n{result.stderr}"
    return result.stdout


def load(text: str) -> list[Manifest]:
    """All documents of a multi-document YAML text, empty ones left out."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


class BrokenOverlay:
    """Builds deliberately broken variants of an overlay in a scratch copy of deploy/k8s.

    Each variant is a new overlay that includes a real one and applies one patch, so the
    checks see exactly what a user's mistake in that overlay would produce.
    """

    def __init__(self, kubectl: str, root: Path) -> None:
        self.kubectl = kubectl
        self.k8s = root / "k8s"
        shutil.copytree(K8S, self.k8s)

    def make(self, name: str, patches: list[dict[str, Any]], overlay: str = "prod") -> Path:
        """Render `overlay` with `patches` applied; return the rendered file."""
        path = self.k8s.parent / f"broken-{name}.yaml"
        if path.exists():  # each variant is built once per session, whichever test asks first
            return path
        folder = self.k8s / "overlays" / f"broken-{name}"
        folder.mkdir()
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [f"../{overlay}"],
            "patches": patches,
        }
        (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
        path.write_text(render(self.kubectl, folder))
        return path


def json_patch(kind: str, name: str, *operations: dict[str, Any]) -> dict[str, Any]:
    """A Kustomize patch entry: JSON 6902 operations on one resource."""
    return {"target": {"kind": kind, "name": name}, "patch": yaml.safe_dump(list(operations))}


def is_builtin(resource: Manifest) -> bool:
    """True for Kubernetes' own kinds: the core group, `apps`, ..., or a `*.k8s.io` group."""
    group = str(resource.get("apiVersion", "")).rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def without_custom_resources(text: str) -> str:
    """The built-in kinds only (custom resources are validated against their CRD instead)."""
    docs = [d for d in load(text) if is_builtin(d)]
    return yaml.safe_dump_all(docs, sort_keys=False)


_API = "/spec/template/spec/containers/0"

# Deliberately broken variants of the prod overlay, one mistake each. The tests assert that each
# check meant to catch a mistake does catch it: a check that never fails proves nothing.
BROKEN: dict[str, list[dict[str, Any]]] = {
    # The API loses its readiness probe: traffic reaches pods before the database is there.
    "missing-probe": [
        json_patch("Deployment", "ilji-api", {"op": "remove", "path": f"{_API}/readinessProbe"})
    ],
    # A typo in the Service selector: valid YAML, a Service with no endpoints.
    "wrong-selector": [
        json_patch(
            "Service",
            "ilji-api",
            {"op": "replace", "path": "/spec/selector/app.kubernetes.io~1component", "value": "apii"},
        )
    ],
    # A misspelt field, which the API server would reject (or silently drop without strict).
    "unknown-field": [
        json_patch(
            "Deployment",
            "ilji-api",
            {
                "op": "add",
                "path": f"{_API}/readinesProbe",
                "value": {"httpGet": {"path": "/readyz", "port": 8000}},
            },
        )
    ],
    "missing-memory-limit": [
        json_patch("Deployment", "ilji-worker", {"op": "remove", "path": f"{_API}/resources/limits"})
    ],
    "prestop-too-long": [
        json_patch(
            "Deployment",
            "ilji-api",
            {"op": "replace", "path": f"{_API}/lifecycle/preStop/exec/command", "value": ["sleep", "25"]},
        )
    ],
    "hpa-target-missing": [
        json_patch(
            "HorizontalPodAutoscaler",
            "ilji-api",
            {"op": "replace", "path": "/spec/scaleTargetRef/name", "value": "ilji-apl"},
        )
    ],
    "database-peer": [
        json_patch(
            "NetworkPolicy",
            "ilji-allow-database",
            {
                "op": "replace",
                "path": "/spec/egress/0/to/0/podSelector/matchLabels/cnpg.io~1cluster",
                "value": "ilji-pg",
            },
        )
    ],
    "privilege-escalation": [
        json_patch(
            "Deployment",
            "ilji-api",
            {"op": "replace", "path": f"{_API}/securityContext/allowPrivilegeEscalation", "value": True},
        )
    ],
    # The API connects as the schema owner: it could update and delete events again.
    "owner-in-api": [
        json_patch(
            "Deployment",
            "ilji-api",
            {"op": "test", "path": f"{_API}/env/4/name", "value": "PGPASSWORD"},
            {"op": "replace", "path": f"{_API}/env/4/valueFrom/secretKeyRef/name", "value": "ilji-db-app"},
        )
    ],
    # The migration grants a role that the workers do not connect as.
    "role-not-granted": [
        json_patch(
            "Job",
            "ilji-migrate",
            {"op": "replace", "path": f"{_API}/args/3", "value": "ilji_other"},
        )
    ],
    # Three ways to get the CloudNativePG Cluster wrong.
    "cluster-unknown-field": [
        json_patch("Cluster", "ilji-db", {"op": "add", "path": "/spec/instancess", "value": 3})
    ],
    "cluster-wrong-type": [
        json_patch("Cluster", "ilji-db", {"op": "replace", "path": "/spec/instances", "value": "three"})
    ],
    # Readers sent to the primary: the standbys carry none of the read load.
    "reader-on-primary": [
        json_patch(
            "Deployment",
            "ilji-api",
            {"op": "test", "path": f"{_API}/env/3/name", "value": "ILJI_READ_DATABASE_URL"},
            {
                "op": "replace",
                "path": f"{_API}/env/3/value",
                "value": "postgresql://ilji_app@ilji-db-rw:5432/ilji",
            },
        )
    ],
    # Session pooling: valid for CloudNativePG, but each API connection would pin a backend.
    "pooler-session-mode": [
        json_patch(
            "Pooler",
            "ilji-db-pooler-rw",
            {"op": "replace", "path": "/spec/pgbouncer/poolMode", "value": "session"},
        )
    ],
    # A Pooler left pointing at another (or a renamed) Cluster.
    "pooler-other-cluster": [
        json_patch(
            "Pooler", "ilji-db-pooler-rw", {"op": "replace", "path": "/spec/cluster/name", "value": "ilji-pg"}
        )
    ],
    # Two ways to get the Pooler's schema wrong.
    "pooler-unknown-field": [
        json_patch(
            "Pooler",
            "ilji-db-pooler-rw",
            {"op": "add", "path": "/spec/pgbouncer/poolmode", "value": "transaction"},
        )
    ],
    "pooler-bad-enum": [
        json_patch(
            "Pooler",
            "ilji-db-pooler-rw",
            {"op": "replace", "path": "/spec/pgbouncer/poolMode", "value": "statement"},
        )
    ],
    "cluster-bad-enum": [
        json_patch(
            "Cluster",
            "ilji-db",
            {"op": "replace", "path": "/spec/postgresql/synchronous/method", "value": "all"},
        )
    ],
}
