"""Ilji's own rules for rendered manifests: mistakes that span resources, which no schema sees.

A schema validator checks one resource at a time, and linters check each pod on its own. The
mistakes that break a deployment quietly are between resources: a Service whose selector
matches no pod (valid YAML, zero endpoints), an autoscaler aimed at a Deployment that was
renamed, a NetworkPolicy that allows traffic to database pods that do not exist, a preStop
sleep that eats the grace period so the server is killed mid-drain.

`violations(manifests)` returns one readable line per problem; the tests assert it is empty
for every overlay, and that each deliberately broken variant produces the expected line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
# Kubernetes' default when terminationGracePeriodSeconds is not set.
DEFAULT_GRACE_SECONDS = 30
# Ilji's default for ILJI_SHUTDOWN_TIMEOUT (src/ilji/settings.py) when the ConfigMap has none.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
# The standard labels every resource of ours carries (https://kubernetes.io/docs/concepts/
# overview/working-with-objects/common-labels/).
REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)


@dataclass(frozen=True)
class Workload:
    """A resource that runs pods, with its pod template."""

    kind: str
    name: str
    namespace: str | None
    labels: dict[str, str]
    pod: dict[str, Any]
    resource: Manifest

    @property
    def ref(self) -> str:
        """`Kind/name`, for messages."""
        return f"{self.kind}/{self.name}"

    def containers(self) -> Iterator[dict[str, Any]]:
        """Init containers and containers."""
        yield from self.pod.get("initContainers", [])
        yield from self.pod.get("containers", [])


def ref(resource: Manifest) -> str:
    """`Kind/name` of a resource, for messages."""
    return f"{resource['kind']}/{resource['metadata']['name']}"


def workloads(manifests: list[Manifest]) -> list[Workload]:
    """Every pod template in the manifests."""
    found = []
    for m in manifests:
        if m.get("kind") in WORKLOAD_KINDS:
            template = m["spec"]["template"]
            found.append(
                Workload(
                    kind=m["kind"],
                    name=m["metadata"]["name"],
                    namespace=m["metadata"].get("namespace"),
                    labels=template.get("metadata", {}).get("labels", {}),
                    pod=template["spec"],
                    resource=m,
                )
            )
    return found


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics: matchLabels and matchExpressions, all must hold."""
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def _matching(selector: dict[str, Any], pods: list[Workload], namespace: str | None) -> list[Workload]:
    return [w for w in pods if w.namespace == namespace and selector_matches(selector, w.labels)]


# --- the rules: each takes all manifests and yields messages ------------------------------------


def selectors_match_pods(manifests: list[Manifest]) -> Iterator[str]:
    """Services, PDBs, NetworkPolicies and Deployments select at least one pod template."""
    pods = workloads(manifests)
    for svc in _of_kind(manifests, "Service"):
        selector = svc["spec"].get("selector")
        ns = svc["metadata"].get("namespace")
        if selector and not _matching({"matchLabels": selector}, pods, ns):
            yield f"{ref(svc)}: selector {selector} matches no pod template"
    for pdb in _of_kind(manifests, "PodDisruptionBudget"):
        if not _matching(pdb["spec"].get("selector", {}), pods, pdb["metadata"].get("namespace")):
            yield f"{ref(pdb)}: selector {pdb['spec'].get('selector')} matches no pod template"
    for policy in _of_kind(manifests, "NetworkPolicy"):
        selector = policy["spec"].get("podSelector", {})
        if selector and not _matching(selector, pods, policy["metadata"].get("namespace")):
            yield f"{ref(policy)}: podSelector {selector} matches no pod template"
    for w in pods:
        selector = w.resource["spec"].get("selector")
        if w.kind != "Job" and not selector_matches(selector, w.labels):
            yield f"{w.ref}: spec.selector {selector} does not match its own pod template labels"


def service_ports_exist(manifests: list[Manifest]) -> Iterator[str]:
    """A Service's named targetPort is a containerPort name of the pods it selects."""
    pods = workloads(manifests)
    for svc in _of_kind(manifests, "Service"):
        selected = _matching(
            {"matchLabels": svc["spec"].get("selector", {})}, pods, svc["metadata"].get("namespace")
        )
        names = {p.get("name") for w in selected for c in w.containers() for p in c.get("ports", [])}
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort")
            if selected and isinstance(target, str) and target not in names:
                yield f"{ref(svc)}: targetPort {target!r} is not a port of the selected pods"


def autoscalers_target_workloads(manifests: list[Manifest]) -> Iterator[str]:
    """HPAs point at an existing workload with CPU requests, which must not set `replicas`."""
    by_ref = {(w.kind, w.name, w.namespace): w for w in workloads(manifests)}
    for hpa in _of_kind(manifests, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        w = by_ref.get((target["kind"], target["name"], hpa["metadata"].get("namespace")))
        if w is None:
            yield f"{ref(hpa)}: scaleTargetRef {target['kind']}/{target['name']} does not exist"
            continue
        uses_cpu = any(
            m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
            for m in hpa["spec"].get("metrics", [])
        )
        if uses_cpu:
            for c in w.pod.get("containers", []):
                if "cpu" not in c.get("resources", {}).get("requests", {}):
                    yield f"{ref(hpa)}: scales on CPU but {w.ref} container {c['name']} has no CPU request"
        if "replicas" in w.resource["spec"]:
            yield f"{ref(hpa)}: {w.ref} sets spec.replicas, which every apply resets under the autoscaler"


def containers_have_resources(manifests: list[Manifest]) -> Iterator[str]:
    """Every container requests CPU and memory and has a memory limit."""
    for w in workloads(manifests):
        for c in w.containers():
            res = c.get("resources", {})
            for kind, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
                if key not in res.get(kind, {}):
                    yield f"{w.ref}: container {c['name']} has no {kind}.{key}"


def _http_path(probe: dict[str, Any] | None) -> str | None:
    return (probe or {}).get("httpGet", {}).get("path")


def serving_containers_have_probes(manifests: list[Manifest]) -> Iterator[str]:
    """Containers that serve a port have startup, readiness (/readyz) and liveness (/healthz) probes.

    Liveness must not depend on the database: during a failover /readyz fails everywhere, and a
    liveness probe on it would restart every pod at once.
    """
    for w in workloads(manifests):
        for c in w.pod.get("containers", []):
            if not c.get("ports"):
                continue
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in c:
                    yield f"{w.ref}: container {c['name']} serves a port but has no {probe}"
            if "readinessProbe" in c and _http_path(c["readinessProbe"]) != "/readyz":
                yield f"{w.ref}: container {c['name']} readinessProbe should GET /readyz"
            if "livenessProbe" in c and _http_path(c["livenessProbe"]) != "/healthz":
                yield f"{w.ref}: container {c['name']} livenessProbe should GET /healthz (no database)"


def _prestop_seconds(container: dict[str, Any]) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    if command and command[0].rsplit("/", 1)[-1] == "sleep":
        return float(command[1])
    joined = " ".join(command)
    match = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", joined)
    return float(match.group(1)) if match else 0.0


def _shutdown_timeout(w: Workload, manifests: list[Manifest]) -> float:
    configmaps = {m["metadata"]["name"]: m.get("data", {}) for m in _of_kind(manifests, "ConfigMap")}
    timeout = DEFAULT_SHUTDOWN_TIMEOUT
    for c in w.pod.get("containers", []):
        for source in c.get("envFrom", []):
            data = configmaps.get(source.get("configMapRef", {}).get("name", ""), {})
            timeout = float(data.get("ILJI_SHUTDOWN_TIMEOUT", timeout))
        for env in c.get("env", []):
            if env["name"] == "ILJI_SHUTDOWN_TIMEOUT" and "value" in env:
                timeout = float(env["value"])
    return timeout


def shutdown_fits_grace_period(manifests: list[Manifest]) -> Iterator[str]:
    """preStop sleep + the server's drain (ILJI_SHUTDOWN_TIMEOUT) end before the kubelet's SIGKILL."""
    for w in workloads(manifests):
        grace = float(w.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
        for c in w.pod.get("containers", []):
            sleep = _prestop_seconds(c)
            if not sleep:
                continue
            drain = _shutdown_timeout(w, manifests)
            if sleep + drain >= grace:
                yield (
                    f"{w.ref}: preStop sleep {sleep:g}s + shutdown timeout {drain:g}s "
                    f">= terminationGracePeriodSeconds {grace:g}s"
                )


def one_image(manifests: list[Manifest]) -> Iterator[str]:
    """serve, worker and migrate run the same image: a rollout cannot mix versions by mistake."""
    images = {c.get("image") for w in workloads(manifests) for c in w.containers()}
    if len(images) > 1:
        yield f"containers use different images: {sorted(str(i) for i in images)}"


def _migrates(container: dict[str, Any]) -> bool:
    """The container runs migrations (`ilji migrate` or `ilji db grant`), as the schema owner."""
    args = container.get("args", [])
    return args[:1] == ["migrate"] or args[:2] == ["db", "grant"]


def _granted_role(container: dict[str, Any]) -> str | None:
    args = container.get("args", [])
    return args[args.index("--role") + 1] if "--role" in args[:-1] else None


def database_names_agree(manifests: list[Manifest]) -> Iterator[str]:
    """Database Secrets, roles and NetworkPolicy peers name the CloudNativePG Cluster rendered.

    Least privilege: only a migrating container reads the owner's `<cluster>-app` Secret; the
    others read the password Secret of a role the Cluster manages, which the migration grants.
    """
    clusters = [m for m in manifests if m.get("kind") == "Cluster"]
    if not clusters:
        return  # an external database: nothing to compare with
    owners = {f"{m['metadata']['name']}-app" for m in clusters}
    managed = {
        role.get("passwordSecret", {}).get("name"): role["name"]
        for m in clusters
        for role in m["spec"].get("managed", {}).get("roles", [])
        if role.get("ensure", "present") == "present" and role.get("login")
    }
    granted = {_granted_role(c) for w in workloads(manifests) for c in w.containers() if _migrates(c)}
    for w in workloads(manifests):
        for c in w.containers():
            for env in c.get("env", []):
                if env["name"] != "ILJI_DATABASE_URL":
                    continue
                secret = _credential_secret(c)
                if _migrates(c):
                    if secret not in owners:
                        yield f"{w.ref}: migrations read Secret {secret}, not the owner's <cluster>-app"
                elif secret in owners:
                    yield f"{w.ref}: ILJI_DATABASE_URL reads the schema owner's Secret {secret}"
                elif secret not in managed:
                    yield f"{w.ref}: ILJI_DATABASE_URL reads Secret {secret}, not a managed role's"
                elif managed[secret] not in granted:
                    yield f"{w.ref}: role {managed[secret]} is never granted by the migration (--role)"
    for policy in _of_kind(manifests, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                name = peer.get("podSelector", {}).get("matchLabels", {}).get("cnpg.io/cluster")
                if name is not None and f"{name}-app" not in owners:
                    yield f"{ref(policy)}: allows egress to cnpg.io/cluster={name}, but no such Cluster"


def _env(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in container.get("env", []) if e["name"] == name), None)


def _credential_secret(container: dict[str, Any]) -> str | None:
    """The Secret the database credentials come from: the URL's own, or PGPASSWORD's when the
    URL is written out (so that its host can be checked) and libpq takes the password from there."""
    url = _env(container, "ILJI_DATABASE_URL") or {}
    source = url if "valueFrom" in url else _env(container, "PGPASSWORD") or {}
    name = source.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
    return str(name) if name is not None else None


def _url_host(container: dict[str, Any], name: str) -> str | None:
    """The host of a database URL written out in the container's env (None: absent or a Secret)."""
    value = (_env(container, name) or {}).get("value")
    if not value:
        return None
    match = re.match(r"^postgres(?:ql)?://(?:[^@/]*@)?([^:/?]+)", value)
    return match.group(1) if match else None


def readers_and_poolers_fit_the_cluster(manifests: list[Manifest]) -> Iterator[str]:
    """Poolers pool transactions for a rendered Cluster; readers use standbys; writers' pooled
    URLs say so (ILJI_DATABASE_POOLED) and LISTEN bypasses the pooler.

    CloudNativePG names a Cluster's Services `<cluster>-rw` (the primary), `-ro` (hot standbys
    only) and `-r` (any instance), and a Pooler's Service after the Pooler.
    """
    clusters = {m["metadata"]["name"] for m in _of_kind(manifests, "Cluster")}
    poolers = {m["metadata"]["name"]: m for m in _of_kind(manifests, "Pooler")}
    for pooler in poolers.values():
        target = pooler["spec"].get("cluster", {}).get("name")
        if target not in clusters:
            yield f"{ref(pooler)}: pools for Cluster {target}, which is not rendered"
        mode = pooler["spec"].get("pgbouncer", {}).get("poolMode", "session")
        if mode != "transaction":
            yield (
                f"{ref(pooler)}: poolMode {mode}: each client would hold a server connection for its "
                "whole session; Ilji is built for transaction pooling"
            )
    primaries = {f"{c}-rw" for c in clusters} | {
        n for n, p in poolers.items() if p["spec"].get("type", "rw") == "rw"
    }
    for w in workloads(manifests):
        for c in w.containers():
            reader = _url_host(c, "ILJI_READ_DATABASE_URL")
            if reader in primaries:
                yield (
                    f"{w.ref}: ILJI_READ_DATABASE_URL points at {reader}, the primary: "
                    "readers belong on the standbys (<cluster>-ro)"
                )
            elif reader is not None and not any(reader == f"{k}-ro" or reader == f"{k}-r" for k in clusters):
                yield f"{w.ref}: ILJI_READ_DATABASE_URL points at {reader}, not a rendered Cluster's -ro"
            writer = _url_host(c, "ILJI_DATABASE_URL")
            if writer in poolers:
                pooled = (_env(c, "ILJI_DATABASE_POOLED") or {}).get("value")
                if str(pooled).lower() != "true":
                    yield f"{w.ref}: URL through Pooler {writer} without ILJI_DATABASE_POOLED=true"
                listen = _url_host(c, "ILJI_LISTEN_DATABASE_URL")
                if listen is None or listen in poolers:
                    yield f"{w.ref}: behind Pooler {writer}, LISTEN needs a direct ILJI_LISTEN_DATABASE_URL"
    for policy in _of_kind(manifests, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                name = peer.get("podSelector", {}).get("matchLabels", {}).get("cnpg.io/poolerName")
                if name is not None and name not in poolers:
                    yield f"{ref(policy)}: allows egress to cnpg.io/poolerName={name}, but no such Pooler"


def config_maps_exist(manifests: list[Manifest]) -> Iterator[str]:
    """ConfigMaps referenced by pods are rendered (generated names carry a hash)."""
    names = {m["metadata"]["name"] for m in _of_kind(manifests, "ConfigMap")}
    for w in workloads(manifests):
        for c in w.containers():
            for source in c.get("envFrom", []):
                name = source.get("configMapRef", {}).get("name")
                if name is not None and name not in names:
                    yield f"{w.ref}: container {c['name']} reads ConfigMap {name}, which is not rendered"


def pods_are_restricted(manifests: list[Manifest]) -> Iterator[str]:
    """Pod Security Standard "restricted", plus a read-only root filesystem and no API token."""
    for w in workloads(manifests):
        pod_sc = w.pod.get("securityContext", {})
        if w.pod.get("automountServiceAccountToken") is not False:
            yield f"{w.ref}: automountServiceAccountToken is not false"
        for c in w.containers():
            sc = c.get("securityContext", {})
            checks = {
                "runAsNonRoot": sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True,
                "seccompProfile RuntimeDefault": (
                    sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") == "RuntimeDefault"
                ),
                "allowPrivilegeEscalation false": sc.get("allowPrivilegeEscalation") is False,
                "capabilities drop ALL": "ALL" in sc.get("capabilities", {}).get("drop", []),
                "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
            }
            for what, ok in checks.items():
                if not ok:
                    yield f"{w.ref}: container {c['name']} lacks {what}"


def standard_labels(manifests: list[Manifest]) -> Iterator[str]:
    """Every resource but the Namespace carries the app.kubernetes.io labels."""
    for m in manifests:
        if m.get("kind") == "Namespace":
            continue
        labels = m["metadata"].get("labels", {})
        missing = [k for k in REQUIRED_LABELS if k not in labels]
        if missing:
            yield f"{ref(m)}: missing labels {missing}"


RULES: list[Callable[[list[Manifest]], Iterator[str]]] = [
    selectors_match_pods,
    service_ports_exist,
    autoscalers_target_workloads,
    containers_have_resources,
    serving_containers_have_probes,
    shutdown_fits_grace_period,
    one_image,
    database_names_agree,
    readers_and_poolers_fit_the_cluster,
    config_maps_exist,
    pods_are_restricted,
    standard_labels,
]


def violations(manifests: list[Manifest]) -> list[str]:
    """Every rule's messages for these manifests; empty when all is well."""
    return [message for rule in RULES for message in rule(manifests)]
