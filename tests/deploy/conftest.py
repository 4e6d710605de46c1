"""Fixtures for the offline deployment checks: the tools, the CRD, the rendered overlays.

No cluster is needed. The checks use real tools: `kubectl kustomize` (on the machine image),
and kubernetes-validate, checkov and hadolint from the `.venv-deploy` virtualenv that
`make deploy-tools` creates (they live apart from `.venv` because checkov pins older versions
of packages that the project's own tools need).

A missing tool skips its checks with a message saying how to get it, except in CI (`CI` set),
where `make test` installs them: there a missing tool fails, so that CI cannot pass green by
skipping everything. A missing kubectl or CRD always skips: they come with the machine and
shared/, not with `make`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.manifests import CLUSTER_CRD, K8S, OVERLAYS, POOLER_CRD, BrokenOverlay, find_tool, render


def _missing_tool(name: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed: in CI, `make test` must install it (`make deploy-tools`)")
    pytest.skip(f"{name} is not installed; run `make deploy-tools`")


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl with its built-in Kustomize; skips (even in CI) where the machine has none."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: the Kubernetes manifests cannot be rendered here")
    return path


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """Look up a checking tool by name; skip (locally) or fail (CI) when it is missing."""

    def lookup(name: str) -> str:
        path = find_tool(name)
        if path is None:
            _missing_tool(name)
            raise AssertionError("unreachable")  # pragma: no cover
        return path

    return lookup


@pytest.fixture(scope="session")
def cluster_crd() -> Path:
    """The CloudNativePG Cluster CRD; skips (even in CI) if shared/ is not beside the repository."""
    if not CLUSTER_CRD.is_file():
        pytest.skip(f"the CloudNativePG CRD is missing: expected ../shared/k8s/crds/{CLUSTER_CRD.name}")
    return CLUSTER_CRD


@pytest.fixture(scope="session")
def pooler_crd() -> Path:
    """The CloudNativePG Pooler CRD, found like the Cluster's (skips if shared/ is missing)."""
    if not POOLER_CRD.is_file():
        pytest.skip(f"the CloudNativePG CRD is missing: expected ../shared/k8s/crds/{POOLER_CRD.name}")
    return POOLER_CRD


@pytest.fixture(scope="session")
def rendered(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every overlay rendered once per session, to a file named after the overlay."""
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        path = out / f"{overlay}.yaml"
        path.write_text(render(kubectl, K8S / "overlays" / overlay))
        files[overlay] = path
    return files


@pytest.fixture(scope="session")
def broken(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> BrokenOverlay:
    """One scratch copy of deploy/k8s per session for the broken variants."""
    return BrokenOverlay(kubectl, tmp_path_factory.mktemp("broken"))
