"""DNS rebinding: a web page whose name resolves to 127.0.0.1 must not reach a server without tokens.

After rebinding, the browser sends the page's requests to the loopback server as same-origin
ones: `Host: evil.example:PORT` and a matching `Origin`. Cost: two servers without tokens
(one with ILJI_ALLOWED_HOSTS) and one with tokens.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server_helpers import ILJI, Server, running_server, stream_name

ADMIN = f"ad-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url, env={"ILJI_ALLOWED_HOSTS": "devbox.test,other.test:9"}) as s:
        yield s


def rebound(server: Server, host: str) -> httpx.Client:
    """A browser on a page of `host` that now resolves to this machine."""
    headers = {"Host": f"{host}:{server.port}", "Origin": f"http://{host}:{server.port}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def event(data: dict[str, object] | None = None) -> dict[str, object]:
    return {"events": [{"type": "Posted", "data": data or {}}]}


def refused(response: httpx.Response) -> None:
    assert response.status_code == 421, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "urn:ilji:problem:host-not-allowed"
    assert "ILJI_ALLOWED_HOSTS" in problem["detail"]


def test_a_rebound_page_can_neither_write_nor_read_nor_administer(server: Server) -> None:
    stream = stream_name()
    with server.client() as own:
        assert own.post(f"/v1/streams/{stream}", json=event()).status_code == 201
    with rebound(server, "evil.example") as page:
        refused(page.post(f"/v1/streams/{stream}", json=event({"by": "evil"})))
        refused(page.post(f"/v1/streams/{stream_name()}", content=b'{"events": [{"type": "T"}]}'))
        refused(page.delete(f"/v1/streams/{stream}"))
        refused(page.get("/v1/streams/$audit"))
        refused(page.get(f"/v1/streams/{stream}"))
        refused(page.get("/v1/all", headers={"Accept": "text/event-stream"}))
        refused(page.post("/v1/projections/any/pause"))
        refused(page.get("/console"))
    with server.client() as own:
        # Nothing the page sent was stored or done.
        body = own.get(f"/v1/streams/{stream}").json()
        assert [e["type"] for e in body["events"]] == ["Posted"]
        assert body["events"][0]["data"] == {}


@pytest.mark.parametrize(
    "host",
    ["localhost", "127.0.0.1", "[::1]", "LOCALHOST", "localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}"],
)
def test_loopback_names_are_answered(server: Server, host: str) -> None:
    with server.client() as client:
        response = client.get("/v1/all?limit=1", headers={"Host": host.format(port=server.port)})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("devbox.test", True),  # any port
        ("devbox.test:{port}", True),
        ("other.test:9", True),
        ("other.test:{port}", False),  # only the port listed
        ("devbox.test.evil.example:{port}", False),
        ("localhost.evil.example:{port}", False),
        ("127.0.0.1.evil.example:{port}", False),
        ("0.0.0.0:{port}", False),
    ],
)
def test_allowed_hosts_adds_names(server: Server, host: str, ok: bool) -> None:
    with server.client() as client:
        response = client.post(
            f"/v1/streams/{stream_name()}", json=event(), headers={"Host": host.format(port=server.port)}
        )
    if ok:
        assert response.status_code == 201, response.text
    else:
        refused(response)


def test_the_refusal_is_logged_and_counted(server: Server) -> None:
    with rebound(server, "counted.example") as page:
        refused(page.get("/healthz"))
    assert "counted.example" in server.log()
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert any(
        line.startswith("ilji_http_requests") and 'status="421"' in line for line in metrics.splitlines()
    )


def test_with_tokens_the_token_is_what_counts(database_url: str) -> None:
    env = {"ILJI_API_TOKENS": f"{ADMIN}=admin"}
    with running_server(database_url, env=env) as s, rebound(s, "proxy.internal") as client:
        assert client.get("/v1/all?limit=1").status_code == 401
        ok = client.post(
            f"/v1/streams/{stream_name()}", json=event(), headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("value", ["http://devbox.test", "devbox.test/x", "a b", "devbox.test:port"])
def test_a_malformed_allowed_host_is_refused_before_starting(value: str) -> None:
    result = subprocess.run(
        [*ILJI, "serve", "--allowed-hosts", value, "--database-url", "postgresql://nobody@127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "--allowed-hosts" in result.stderr
    assert "Traceback" not in result.stderr
