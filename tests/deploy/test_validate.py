"""Schema validation: built-in kinds with kubernetes-validate, the Cluster and Pooler against their CRDs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.crd import CrdValidator
from tests.deploy.manifests import BROKEN, KUBERNETES_VERSIONS, OVERLAYS, BrokenOverlay, load, run
from tests.deploy.manifests import without_custom_resources as builtin_only


def kubernetes_validate(executable: str, version: str, files: list[Path]) -> tuple[int, str]:
    """kubernetes-validate --strict on the built-in kinds of each file (strict: unknown fields fail)."""
    inputs = []
    for path in files:
        only = path.with_name(f"{path.stem}.builtin.yaml")
        only.write_text(builtin_only(path.read_text()))
        inputs.append(str(only))
    result = run([executable, "--strict", "--quiet", "-k", version, *inputs])
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_overlays_are_valid_kubernetes(
    tool: Callable[[str], str], rendered: dict[str, Path], version: str
) -> None:
    code, output = kubernetes_validate(tool("kubernetes-validate"), version, list(rendered.values()))
    assert code == 0, output
    assert "WARN" not in output and "ERROR" not in output, output


def test_kubernetes_validate_rejects_an_unknown_field(
    tool: Callable[[str], str], broken: BrokenOverlay
) -> None:
    path = broken.make("unknown-field", BROKEN["unknown-field"])
    code, output = kubernetes_validate(tool("kubernetes-validate"), KUBERNETES_VERSIONS[-1], [path])
    assert code != 0
    assert "readinesProbe" in output, output


@pytest.fixture(scope="session")
def cluster_validator(cluster_crd: Path) -> CrdValidator:
    return CrdValidator(cluster_crd)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cluster_matches_the_cloudnative_pg_crd(
    cluster_validator: CrdValidator, rendered: dict[str, Path], overlay: str
) -> None:
    clusters = [d for d in load(rendered[overlay].read_text()) if cluster_validator.handles(d)]
    assert clusters, f"the {overlay} overlay renders no CloudNativePG Cluster"
    for cluster in clusters:
        assert cluster_validator.errors(cluster) == []


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (
            "cluster-unknown-field",
            "spec: Additional properties are not allowed ('instancess' was unexpected)",
        ),
        ("cluster-wrong-type", "spec.instances: 'three' is not of type 'integer'"),
        ("cluster-bad-enum", "spec.postgresql.synchronous.method: 'all' is not one of"),
    ],
)
def test_crd_validation_catches_a_bad_cluster(
    cluster_validator: CrdValidator, broken: BrokenOverlay, variant: str, expected: str
) -> None:
    docs = load(broken.make(variant, BROKEN[variant]).read_text())
    (cluster,) = [d for d in docs if cluster_validator.handles(d)]
    errors = cluster_validator.errors(cluster)
    assert any(e.startswith(expected) for e in errors), errors


@pytest.fixture(scope="session")
def pooler_validator(pooler_crd: Path) -> CrdValidator:
    return CrdValidator(pooler_crd)


def test_prod_pooler_matches_the_cloudnative_pg_crd(
    pooler_validator: CrdValidator, rendered: dict[str, Path]
) -> None:
    poolers = [d for d in load(rendered["prod"].read_text()) if pooler_validator.handles(d)]
    assert [p["metadata"]["name"] for p in poolers] == ["ilji-db-pooler-rw"]
    assert pooler_validator.errors(poolers[0]) == []


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (
            "pooler-unknown-field",
            "spec.pgbouncer: Additional properties are not allowed ('poolmode' was unexpected)",
        ),
        ("pooler-bad-enum", "spec.pgbouncer.poolMode: 'statement' is not one of ['session', 'transaction']"),
    ],
)
def test_crd_validation_catches_a_bad_pooler(
    pooler_validator: CrdValidator, broken: BrokenOverlay, variant: str, expected: str
) -> None:
    docs = load(broken.make(variant, BROKEN[variant]).read_text())
    (pooler,) = [d for d in docs if pooler_validator.handles(d)]
    errors = pooler_validator.errors(pooler)
    assert any(e.startswith(expected) for e in errors), errors
