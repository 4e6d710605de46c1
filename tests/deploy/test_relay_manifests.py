"""The relay's manifests in every overlay: its NATS URL from a Secret, probes, network access."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.manifests import OVERLAYS
from tests.deploy.policy import selector_matches
from tests.deploy.test_policy import manifests, one


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_relay_reads_nats_from_a_secret_and_is_probed(rendered: dict[str, Path], overlay: str) -> None:
    docs = manifests(rendered[overlay])
    relay = one(docs, "Deployment", "ilji-relay")
    (container,) = relay["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["relay", "run"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ILJI_RELAY_NATS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "ilji-relay-nats",
        "key": "url",
    }
    assert "value" not in env["ILJI_RELAY_NATS_URL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9108}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_the_relay_reach_nats_and_only_that_beyond_the_base(
    rendered: dict[str, Path], overlay: str
) -> None:
    docs = manifests(rendered[overlay])
    labels = one(docs, "Deployment", "ilji-relay")["spec"]["template"]["metadata"]["labels"]
    policies = [
        d for d in docs if d["kind"] == "NetworkPolicy" and selector_matches(d["spec"]["podSelector"], labels)
    ]
    egress_ports = {
        (port["protocol"], port["port"])
        for p in policies
        for rule in p["spec"].get("egress", [])
        for port in rule["ports"]
    }
    # DNS, PostgreSQL and NATS; everything else is denied by ilji-default-deny.
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 4222)}
    assert any(p["metadata"]["name"] == "ilji-default-deny" for p in policies)
    # The workers (and the API) do not get the relay's way out to NATS.
    worker = one(docs, "Deployment", "ilji-worker")["spec"]["template"]["metadata"]["labels"]
    nats = one(docs, "NetworkPolicy", "ilji-relay-allow-nats")
    assert not selector_matches(nats["spec"]["podSelector"], worker)
