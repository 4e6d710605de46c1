"""A real `ilji serve`: rate limits per token and per address, hashed tokens kept out of logs, HTTPS.

Cost: two servers (one with tokens and rate limits, one with TLS and no tokens) and six
short-lived `ilji` processes (token commands, refused settings).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ilji.domain.errors import ValidationError
from ilji.server.auth import Role, hash_token, parse_tokens
from ilji.server.ratelimit import Buckets, parse_rate
from tests.e2e.server_helpers import ILJI, Server, append, free_port, running_server, stream_name

SSE = {"Accept": "text/event-stream"}


def _secret(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


# Fresh random tokens for each run: a leak cannot hide behind a fixed string.
READER, ADMIN = _secret("rd"), _secret("ad")
LIMITED_1, LIMITED_2 = _secret("l1"), _secret("l2")
WRONG = _secret("wrong")
BURST = 3


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ilji(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ILJI, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def hashed_writer() -> tuple[str, str]:
    """A write token and its `ILJI_API_TOKENS` entry, made by `ilji token new`."""
    made = ilji("token", "new", "--role", "write", "--json")
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert result["entry"] == f"{hash_token(result['token'])}=write"
    # `ilji token hash` (reading standard input) gives the same digest.
    hashed = ilji("token", "hash", stdin=result["token"] + "\n")
    assert hashed.stdout.strip() == hash_token(result["token"]), hashed.stderr
    return result["token"], result["entry"]


@pytest.fixture(scope="module")
def server(database_url: str, hashed_writer: tuple[str, str]) -> Iterator[Server]:
    tokens = [
        hashed_writer[1],
        f"{READER}=read",
        f"{ADMIN}=admin",
        f"{LIMITED_1}=write",
        f"{LIMITED_2}=write",
    ]
    env = {
        "ILJI_API_TOKENS": ",".join(tokens),  # the first entry holds only a digest
        "ILJI_LOG_LEVEL": "DEBUG",
        "ILJI_MONITOR_INTERVAL": "0.2",  # so the debug log has background lines too
        # One request a minute after a burst of 3: nothing refills during the test.
        "ILJI_RATE_LIMIT": "1/min",
        "ILJI_RATE_LIMIT_BURST": str(BURST),
        "ILJI_RATE_LIMIT_ROLES": "admin=1000/s",
    }
    with running_server(database_url, env=env) as s:
        yield s


def test_a_token_over_its_rate_gets_429_with_retry_after_and_nothing_is_stored(server: Server) -> None:
    stream = stream_name("limited")
    with server.client(LIMITED_1) as c:
        statuses = [append(c, stream, "Tick").status_code for _ in range(BURST)]
        refused = append(c, stream, "Tick")
    assert statuses == [201] * BURST
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    body = refused.json()
    assert body["type"] == "urn:ilji:problem:rate-limited" and body["status"] == 429
    assert "too many requests" in body["detail"]
    # Another token has its own bucket; an admin token has its role's (much higher) rate.
    with server.client(LIMITED_2) as c:
        assert append(c, stream, "Tick").status_code == 201
    with server.client(ADMIN) as c:
        pages = [c.get(f"/v1/streams/{stream}") for _ in range(BURST * 2)]
    assert {p.status_code for p in pages} == {200}
    assert pages[-1].json()["version"] == BURST + 1, "the refused append must store nothing"


def test_probes_are_never_limited(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        statuses = {c.get(path).status_code for path in ("/healthz", "/readyz") * (BURST * 3)}
    assert statuses == {200}


def test_wrong_tokens_are_limited_by_address(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10, headers=bearer(WRONG)) as c:
        statuses = [c.get("/v1/all").status_code for _ in range(BURST + 2)]
    # 401 while the address has requests left, then 429 (earlier tests may have used some).
    assert statuses == sorted(statuses) and set(statuses) <= {401, 429} and statuses[-1] == 429


def test_limited_requests_are_counted_in_metrics(server: Server) -> None:
    with server.client(LIMITED_1) as c:
        assert c.get("/v1/all").status_code == 429  # the bucket emptied above stays empty
    with server.client(ADMIN) as c:
        text = c.get("/metrics").text
    counted = {
        line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ilji_http_rate_limited_total{")
    }
    assert counted['role="write"'] >= 1


def test_no_token_appears_in_debug_logs_or_metrics(server: Server, hashed_writer: tuple[str, str]) -> None:
    stream = stream_name("leak")
    writer, entry = hashed_writer
    with server.client(writer) as c:
        assert append(c, stream, "Tick").status_code == 201  # a hashed token works
        with c.stream("GET", f"/v1/streams/{stream}", headers=SSE) as r:
            assert r.status_code == 200
            next(r.iter_lines())
    with server.client(READER) as c:
        assert c.get(f"/v1/streams/{stream}").status_code == 200
        assert append(c, stream, "Tick").status_code == 403
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get(f"/v1/streams/{stream}?token={WRONG}", headers=bearer(WRONG)).status_code in (401, 429)
    with server.client(ADMIN) as c:
        metrics = c.get("/metrics").text
    time.sleep(0.5)  # let the debug lines of the last requests reach the log file
    log = server.log()
    assert " DEBUG " in log, "the server did not log at debug level"
    assert "status=403" in log and "route=/v1/streams/{stream}" in log, "requests were not logged"
    digest = entry.removeprefix("sha256:").removesuffix("=write")
    for secret in (writer, READER, ADMIN, LIMITED_1, LIMITED_2, WRONG, digest):
        assert secret not in log, "a token reached the server's log"
        assert secret not in metrics, "a token reached /metrics"


# -- TLS ----------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def https_server(database_url: str, cert: Path, key: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*ILJI, "serve", "--database-url", database_url, "--port", str(port), *tls],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("ILJI_")}, **env},
        )
        try:
            verify = ssl.create_default_context(cafile=str(cert))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"https://127.0.0.1:{port}/healthz", verify=verify, timeout=1).is_success:
                        break
                time.sleep(0.1)
            yield f"https://127.0.0.1:{port}", port
        finally:
            proc.terminate()
            code = proc.wait(timeout=20)
            log.seek(0)
            output = log.read().decode(errors="replace")
        assert code == 0 and "Traceback" not in output, output


def test_https_with_a_self_signed_certificate_limits_by_address(database_url: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    env = {"ILJI_RATE_LIMIT": "1/min", "ILJI_RATE_LIMIT_BURST": "2"}
    with https_server(database_url, cert, key, env) as (url, port):
        verify = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=url, verify=verify, timeout=10) as c:
            stream = stream_name("tls")
            assert append(c, stream, "Tick").status_code == 201
            assert c.get(f"/v1/streams/{stream}").json()["version"] == 1
            # Without tokens the client is its address: the third request is over the burst.
            refused = c.get(f"/v1/streams/{stream}")
            assert refused.status_code == 429 and "retry-after" in refused.headers
            assert c.get("/readyz").status_code == 200
        # A client that does not trust the certificate is refused by TLS itself.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=5)
        # Plain HTTP to the HTTPS port gets no HTTP answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--tls-cert", "cert.pem"], {}, "--tls-key"),
        (["--tls-cert", "missing.pem", "--tls-key", "missing.key"], {}, "cannot load the certificate"),
        ([], {"ILJI_RATE_LIMIT": "fast"}, "not a rate"),
        ([], {"ILJI_RATE_LIMIT_ROLES": "owner=5/s"}, "read=200/s"),
    ],
)
def test_bad_tls_or_rate_settings_are_refused_before_starting(
    database_url: str, tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    cert, _ = _self_signed(tmp_path)
    args = [str(cert) if a == "cert.pem" else a for a in args]
    result = subprocess.run(
        [*ILJI, "serve", "--port", str(free_port()), "--database-url", database_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


# -- the buckets themselves (no server: a hand-driven clock) ------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    buckets = Buckets(10, clock)
    rate = parse_rate("2/s", "rate_limit", burst=2)
    assert [buckets.take("a", rate) for _ in range(3)] == [0, 0, 0.5]
    clock.now += 0.25
    assert buckets.take("a", rate) == pytest.approx(0.25)
    clock.now += 60  # refills to the burst, no further
    assert [buckets.take("a", rate) for _ in range(3)] == [0, 0, 0.5]


def test_buckets_are_bounded_and_idle_ones_are_forgotten() -> None:
    clock = Clock()
    buckets = Buckets(100, clock)
    rate = parse_rate("600/min", "rate_limit")  # 10 a second, bursts of 10
    for i in range(1000):
        buckets.take(f"client-{i}", rate)
    assert len(buckets) == 100  # the least recently used went first
    clock.now += 1.0  # every bucket has refilled: the same as no bucket
    buckets.take("newcomer", rate)
    assert len(buckets) == 1


# -- token parsing (no server) ----------------------------------------------------------------


def test_a_hashed_entry_accepts_its_token_and_not_the_hash_itself() -> None:
    hashed, plain = _secret("hashed"), _secret("plain")
    tokens = parse_tokens(f"{hash_token(hashed)}=write, {plain}=read")
    assert tokens.role_of(hashed) is Role.WRITE and tokens.role_of(plain) is Role.READ
    # The digest in the configuration is not a credential: presenting it gets nothing.
    assert tokens.role_of(hash_token(hashed)) is None
    assert tokens.role_of(hash_token(hashed).removeprefix("sha256:")) is None
    shown = repr(tokens) + repr(tokens.find(hashed)) + repr(tokens.find(plain))
    assert hashed not in shown and plain not in shown and hash_token(hashed)[7:] not in shown


@pytest.mark.parametrize(
    "entry", ["sha256:abc123=write", f"sha256:{'g' * 64}=read", f"sha256:{'a' * 63}=admin"]
)
def test_a_malformed_hash_is_refused_without_echoing_it(entry: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_tokens(f"fine-token=read,{entry}")
    assert "entry 2" in caught.value.message and "64 hex digits" in caught.value.message
    assert entry.split("=")[0].removeprefix("sha256:") not in caught.value.message
