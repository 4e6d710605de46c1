"""Ilji's own rules on the rendered overlays (tests/deploy/policy.py), and what each overlay promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import BROKEN, OVERLAYS, BrokenOverlay, Manifest, load
from tests.deploy.policy import selector_matches, violations, workloads


def manifests(path: Path) -> list[Manifest]:
    return load(path.read_text())


def one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_follows_the_policy(rendered: dict[str, Path], overlay: str) -> None:
    assert violations(manifests(rendered[overlay])) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_in_one_bounded_job_not_in_init_containers(
    rendered: dict[str, Path], overlay: str
) -> None:
    docs = manifests(rendered[overlay])
    job = one(docs, "Job", "ilji-migrate")
    for field in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        assert field in job["spec"], f"the migration Job needs {field}"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:3] == ["db", "grant", "--role"]
    for w in workloads(docs):
        assert not w.pod.get("initContainers"), f"{w.ref} has init containers"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_enforces_restricted_pod_security(rendered: dict[str, Path], overlay: str) -> None:
    docs = manifests(rendered[overlay])
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        namespace["metadata"]["name"]
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_rendered(rendered: dict[str, Path], overlay: str) -> None:
    docs = manifests(rendered[overlay])
    assert [d for d in docs if d["kind"] == "Secret"] == []
    api = one(docs, "Deployment", "ilji-api")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"] if "valueFrom" in e}
    assert refs["ILJI_API_TOKENS"] == {"name": "ilji-api-tokens", "key": "tokens"}
    if overlay == "prod":  # URLs written out (their hosts are checked), the password from the Secret
        assert "ILJI_DATABASE_URL" not in refs
        assert refs["PGPASSWORD"] == {"name": "ilji-db-runtime", "key": "password"}
        assert not any(":" in e.get("value", "").split("@")[0][len("postgresql://") :] for e in api["env"])
    else:
        assert refs["ILJI_DATABASE_URL"] == {"name": "ilji-db-runtime", "key": "uri"}
    job = one(docs, "Job", "ilji-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in job["env"]}["ILJI_DATABASE_URL"] == {
        "name": "ilji-db-app",
        "key": "uri",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_servers_and_workers_connect_as_the_restricted_role(rendered: dict[str, Path], overlay: str) -> None:
    docs = manifests(rendered[overlay])
    roles = {r["name"]: r for r in one(docs, "Cluster", "ilji-db")["spec"]["managed"]["roles"]}
    app = roles["ilji_app"]
    assert app["login"] is True and not app.get("superuser") and not app.get("createrole")
    assert app["passwordSecret"] == {"name": "ilji-db-runtime"}
    job = one(docs, "Job", "ilji-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert job["args"] == ["db", "grant", "--role", "ilji_app"]


def test_prod_keeps_capacity_through_rollouts_and_failures(rendered: dict[str, Path]) -> None:
    docs = manifests(rendered["prod"])
    hpa = one(docs, "HorizontalPodAutoscaler", "ilji-api")
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    api = one(docs, "Deployment", "ilji-api")
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert one(docs, "Deployment", "ilji-worker")["spec"]["replicas"] >= 2
    # Workers are placed by leases, not by load: no autoscaler may target them.
    assert {h["spec"]["scaleTargetRef"]["name"] for h in docs if h["kind"] == "HorizontalPodAutoscaler"} == {
        "ilji-api"
    }
    cluster = one(docs, "Cluster", "ilji-db")["spec"]
    assert cluster["instances"] >= 3
    assert cluster["postgresql"]["synchronous"]["number"] >= 1


def test_prod_api_writes_through_the_pooler_and_reads_from_standbys(rendered: dict[str, Path]) -> None:
    docs = manifests(rendered["prod"])
    pooler = one(docs, "Pooler", "ilji-db-pooler-rw")["spec"]
    assert pooler["cluster"]["name"] == "ilji-db" and pooler["type"] == "rw"
    assert pooler["pgbouncer"]["poolMode"] == "transaction"
    api = one(docs, "Deployment", "ilji-api")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert env["ILJI_DATABASE_URL"] == "postgresql://ilji_app@ilji-db-pooler-rw:5432/ilji"
    assert env["ILJI_DATABASE_POOLED"] == "true"
    assert env["ILJI_LISTEN_DATABASE_URL"] == "postgresql://ilji_app@ilji-db-rw:5432/ilji"
    assert env["ILJI_READ_DATABASE_URL"] == "postgresql://ilji_app@ilji-db-ro:5432/ilji"


def test_dev_runs_one_of_everything(rendered: dict[str, Path]) -> None:
    docs = manifests(rendered["dev"])
    assert one(docs, "HorizontalPodAutoscaler", "ilji-api")["spec"]["minReplicas"] == 1
    assert one(docs, "Deployment", "ilji-worker")["spec"]["replicas"] == 1
    assert one(docs, "Cluster", "ilji-db")["spec"]["instances"] == 1


# Each broken variant and the line the policy must report for it.
CAUGHT_BY_POLICY: dict[str, str] = {
    "missing-probe": "Deployment/ilji-api: container api serves a port but has no readinessProbe",
    "wrong-selector": "Service/ilji-api: selector",
    "missing-memory-limit": "Deployment/ilji-worker: container worker has no limits.memory",
    "prestop-too-long": "Deployment/ilji-api: preStop sleep 25s + shutdown timeout 15s",
    "hpa-target-missing": "HorizontalPodAutoscaler/ilji-api: scaleTargetRef Deployment/ilji-apl",
    "database-peer": "NetworkPolicy/ilji-allow-database: allows egress to cnpg.io/cluster=ilji-pg",
    "privilege-escalation": "Deployment/ilji-api: container api lacks allowPrivilegeEscalation false",
    "owner-in-api": "Deployment/ilji-api: ILJI_DATABASE_URL reads the schema owner's Secret ilji-db-app",
    "role-not-granted": "Deployment/ilji-api: role ilji_app is never granted by the migration",
    "reader-on-primary": "Deployment/ilji-api: ILJI_READ_DATABASE_URL points at ilji-db-rw, the primary",
    "pooler-session-mode": "Pooler/ilji-db-pooler-rw: poolMode session",
    "pooler-other-cluster": "Pooler/ilji-db-pooler-rw: pools for Cluster ilji-pg, which is not rendered",
}


@pytest.mark.parametrize("variant", sorted(CAUGHT_BY_POLICY))
def test_policy_catches_a_broken_manifest(broken: BrokenOverlay, variant: str) -> None:
    found = violations(manifests(broken.make(variant, BROKEN[variant])))
    assert any(line.startswith(CAUGHT_BY_POLICY[variant]) for line in found), found


def test_selector_semantics_follow_kubernetes() -> None:
    labels = {"app": "ilji", "tier": "api"}
    expressions: list[dict[str, Any]] = [
        {"key": "tier", "operator": "In", "values": ["api", "worker"]},
        {"key": "canary", "operator": "DoesNotExist"},
    ]
    assert selector_matches({"matchLabels": {"app": "ilji"}, "matchExpressions": expressions}, labels)
    assert not selector_matches({"matchLabels": {"app": "ilji", "tier": "worker"}}, labels)
    assert not selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["api"]}]}, labels
    )
    assert selector_matches({}, labels)  # an empty selector selects everything
