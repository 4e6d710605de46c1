"""Bad input and abuse against a real `ilji serve`: every case gets a clear 4xx problem (or is
stored exactly as sent), never a 5xx, a hang or a partial write.

The requests are written as raw HTTP/1.1 bytes, so that what reaches the server is exactly
what the case says (invalid UTF-8, duplicate keys, lying lengths, trickled headers). The
catalogue `CASES` is also what `bench/bad_input.py` sends in its campaign; this module runs
it against a server with short timeouts and a small SSE cap, so the whole file takes about
15 s.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.e2e.server_helpers import Server, running_server

#: Server settings for these tests: short enough to observe, long enough for a busy CI machine.
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
#: The server starts its clock when it accepts the connection, a moment before the test does.
EARLY = 0.05
SSE_CAP = 20
ABUSE_ENV = {
    "ILJI_ACCESS_LOG": "false",
    "ILJI_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "ILJI_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "ILJI_MAX_SSE_CONNECTIONS": str(SSE_CAP),
    "ILJI_MAX_HEADER_BYTES": "16384",
}
BODY_LIMIT = 1024 * 1024  # the default ILJI_BODY_LIMIT
PROBLEM = "application/problem+json"


# -- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Answer:
    """What the server sent back on one connection (status 0: nothing, the connection closed)."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> object:
        """The body as JSON."""
        return json.loads(self.body)


def request(
    method: str,
    path: str | bytes,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    length: bool = True,
) -> bytes:
    """A raw HTTP/1.1 request; `path` as bytes goes on the wire as it is."""
    target = path if isinstance(path, bytes) else path.encode()
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    if content_type is not None and body:
        lines.append(b"Content-Type: " + content_type.encode())
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}".encode())
    if length and method != "GET":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def read_answer(sock: socket.socket, started: float, timeout: float = 15.0) -> Answer:
    """Read one response (Content-Length framed, or to EOF) from `sock`."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        while match and len(body) < int(match[1]):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        data = head + b"\r\n\r\n" + body
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Answer(status, headers, body, time.monotonic() - started)


def send(port: int, raw: bytes, timeout: float = 15.0) -> Answer:
    """Send a raw request on a new connection and read the answer."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        return read_answer(sock, started, timeout)


def trickle(port: int, raw: bytes, split: int, delay: float, timeout: float = 30.0) -> Answer:
    """Send `raw[:split]` at once, then the rest a byte every `delay` seconds; the answer."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        sock.sendall(raw[:split])
        for byte in raw[split:]:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break  # the server gave up on this client and closed
            time.sleep(delay)
        return read_answer(sock, started, timeout)


# -- the catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad (or odd) request and what the server may answer.

    `stream` is the stream the request would write to: after a refusal it must hold nothing
    (checked in the database); after a 201 it must hold the event under exactly that name.
    """

    kind: str
    name: str
    raw: bytes
    expect: frozenset[int]
    stream: str | None = None


def append_request(
    stream: str,
    body: bytes,
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    length: bool = True,
) -> bytes:
    """A raw append of `body` to `stream` (the name percent-encoded)."""
    path = "/v1/streams/" + urllib.parse.quote(stream, safe="")
    return request("POST", path, body, content_type=content_type, headers=headers, length=length)


def event_body(data: str = "{}") -> bytes:
    """A JSON body with one event whose data is the JSON text `data`."""
    return b'{"events": [{"type": "Tested", "data": ' + data.encode() + b"}]}"


def _nested(depth: int) -> bytes:
    return b'{"events": [{"type": "T", "data": {"x": ' + b"[" * depth + b"]" * depth + b"}}]}"


def cases(prefix: str) -> list[Case]:
    """The hand-written catalogue; stream names start with `prefix` so runs do not collide."""

    def name(tag: str) -> str:
        return f"{prefix}{tag}-{uuid.uuid4().hex[:6]}"

    out: list[Case] = []

    def add(kind: str, label: str, raw: bytes, expect: set[int] | frozenset[int], stream: str | None) -> None:
        out.append(Case(kind, label, raw, frozenset(expect), stream))

    # -- bodies: size and shape
    s = name("big")
    over = b'{"events": [{"type": "T", "data": {"x": "' + b"y" * BODY_LIMIT + b'"}}]}'
    add(
        "body size",
        "1 byte over the limit, Content-Length",
        append_request(s, over[: BODY_LIMIT + 1]),
        {413},
        s,
    )
    s = name("big")
    add(
        "body size",
        "Content-Length of 100 MB, no body sent",
        append_request(s, b"", headers={"Content-Length": "104857600"}, length=False),
        {413},
        s,
    )
    s = name("lie")
    add(
        "body size",
        "Content-Length larger than the body",
        append_request(s, event_body(), headers={"Content-Length": "999"}, length=False),
        {408},
        s,
    )
    for depth in (64, 1000, 10_000):
        s = name("deep")
        add(
            "nesting",
            f"JSON nested {depth} levels",
            append_request(s, _nested(depth)),
            {201} if depth <= 64 else {422},
            s,
        )
    s = name("deep")
    add("nesting", "body nested 10000 levels", append_request(s, b"[" * 10_000 + b"]" * 10_000), {422}, s)

    # -- numbers
    for label, literal, expect in [
        ("1e400", "1e400", {400}),
        ("-1e400", "-1e400", {400}),
        ("2**70", str(2**70), {400}),
        ("-(2**63)-1", str(-(2**63) - 1), {400}),
        ("2**63-1", str(2**63 - 1), {201}),
        ("-0", "-0", {201}),
        ("-0.0", "-0.0", {201}),
        ("NaN", "NaN", {400, 422}),
        ("Infinity", "Infinity", {400, 422}),
        ("1e-400", "1e-400", {201}),
        ("0x10", "0x10", {422}),
        ("leading zeros", "007", {422}),
    ]:
        s = name("num")
        add("numbers", label, append_request(s, event_body('{"n": ' + literal + "}")), expect, s)
    s = name("num")
    add(
        "numbers",
        "expected_version 2**70",
        append_request(s, b'{"expected_version": 1180591620717411303424, "events": [{"type": "T"}]}'),
        {422},
        s,
    )
    s = name("num")
    add(
        "numbers",
        "If-Match 10**30",
        append_request(s, event_body(), headers={"If-Match": "1" + "0" * 30}),
        {400},
        s,
    )
    s = name("num")
    add(
        "numbers",
        "expected_version 1e400",
        append_request(s, b'{"expected_version": 1e400, "events": [{"type": "T"}]}'),
        {422},
        s,
    )

    # -- encodings
    s = name("utf")
    add(
        "utf-8",
        "invalid UTF-8 in a string",
        append_request(s, b'{"events": [{"type": "T", "data": {"x": "\xff\xfe"}}]}'),
        {422},
        s,
    )
    s = name("utf")
    add(
        "utf-8",
        "invalid UTF-8 in a key",
        append_request(s, b'{"events": [{"type": "T", "data": {"\xc3": 1}}]}'),
        {422},
        s,
    )
    s = name("utf")
    add("utf-8", "lone surrogate escape", append_request(s, event_body('{"x": "\\ud800"}')), {400, 422}, s)
    s = name("utf")
    add("utf-8", "NUL escape in a string", append_request(s, event_body('{"x": "a\\u0000b"}')), {400}, s)
    s = name("utf")
    add("utf-8", "UTF-16 body", append_request(s, event_body().decode().encode("utf-16")), {422}, s)
    s = name("utf")
    add(
        "utf-8",
        "%FF in the stream name",
        request("POST", f"/v1/streams/{s}%FF", event_body()),
        {400},
        s + "\ufffd",
    )
    add("utf-8", "%C3 in a category", request("GET", f"/v1/categories/{prefix}x%C3"), {400}, None)
    add("utf-8", "%FF in the query", request("GET", "/v1/all?after=%FF"), {400}, None)
    add(
        "utf-8",
        "raw 0xFF byte in the path",
        request("POST", b"/v1/streams/" + prefix.encode() + b"\xff", event_body()),
        {400},
        None,
    )

    # -- stream names: stored exactly as sent, or refused
    for label, stream, expect in [
        ("Korean", name("일지"), {201}),
        ("emoji", name("📓"), {201}),
        ("quotes", name('it\'s-"quoted"'), {201}),
        ("SQL comment", name("x';--"), {201}),
        ("DROP TABLE with spaces", prefix + "'; DROP TABLE ilji.events; --", {400}),
        ("percent-encoded NUL", prefix + "a\x00b", {400}),
        ("RTL mark", name("a\u200fb"), {201}),
        ("zero-width joiner", name("a\u200db"), {201}),
        ("200 characters", (prefix + "n" * 200)[:200], {201}),
        ("201 characters", (prefix + "n" * 201)[:201], {400}),
        ("10,000 characters", prefix + "n" * 10_000, {400}),
        ("slash", name("a/b"), {201}),
        ("question mark", name("a?b"), {201}),
        ("line separator", name("a\u2028b"), {400}),
        ("reserved $", "$" + name("x"), {400}),
    ]:
        add("stream names", label, append_request(stream, event_body()), expect, stream)

    # -- content types: every body is JSON (the contract), whatever the header says
    for label, ctype, expect in [
        ("text/plain", "text/plain", {201}),
        ("form", "application/x-www-form-urlencoded", {201}),
        ("no Content-Type", None, {201}),
        ("application/json; charset=utf-8", "application/json; charset=utf-8", {201}),
        ("APPLICATION/JSON", "APPLICATION/JSON", {201}),
        ("a +json type", "application/vnd.ilji+json", {201}),
    ]:
        s = name("ct")
        add("content types", label, append_request(s, event_body(), content_type=ctype), expect, s)

    # -- cross-site writes: a page from another site, through a visitor's browser
    for label, ctype, origin, expect in [
        ("another site, text/plain (no CORS preflight)", "text/plain", "http://evil.example", {403}),
        ("another site, JSON", "application/json", "https://evil.example", {403}),
        ("another port of this host", "text/plain", "http://127.0.0.1:9999", {403}),
        ("Origin: null (sandboxed frame, file:// page)", "text/plain", "null", {403}),
        ("the server's own page (the console)", "application/json", "http://127.0.0.1", {201}),
    ]:
        s = name("origin")
        raw = append_request(s, event_body(), content_type=ctype, headers={"Origin": origin})
        add("cross-origin", label, raw, expect, s)
    s = name("dup")
    add(
        "duplicate keys", "duplicate key in data", append_request(s, event_body('{"a": 1, "a": 2}')), {201}, s
    )
    s = name("dup")
    add(
        "duplicate keys",
        "events given twice",
        append_request(s, b'{"events": [{"type": "A"}], "events": [{"type": "B"}]}'),
        {201},
        s,
    )

    # -- HTTP itself
    add("http", "not HTTP at all", b"\x16\x03\x01\x02\x00hello\r\n\r\n", {400}, None)
    add(
        "http",
        "two Content-Length headers",
        append_request(name("h"), event_body(), headers={"Content-Length": "3"}),
        {400},
        None,
    )
    add(
        "http",
        "negative Content-Length",
        append_request(name("h"), b"", headers={"Content-Length": "-1"}, length=False),
        {400},
        None,
    )
    add("http", "unknown method", request("BREW", "/v1/all"), {400, 405}, None)
    add(
        "http",
        "headers over the limit (70 kB, the default limit is 64 KiB)",
        request("GET", "/healthz", headers={"X-Pad": "p" * 70_000}),
        {431},
        None,
    )
    add(
        "http",
        "Last-Event-ID of 30 digits",
        request("GET", "/v1/all", headers={"Accept": "text/event-stream", "Last-Event-ID": "9" * 30}),
        {400},
        None,
    )
    return out


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url, env=ABUSE_ENV) as s:
        yield s


def stored(url: str, stream: str) -> list[tuple[str, dict[str, object]]]:
    """(type, data) of the events stored under exactly this stream name."""
    if "\x00" in stream:
        return []  # PostgreSQL text cannot hold NUL: no such stream can exist
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT type, data FROM ilji.events WHERE stream = %s ORDER BY version", (stream,)
        )
        return [(row[0], row[1]) for row in rows.fetchall()]


def total_events(url: str) -> int:
    """How many events the database holds."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM ilji.events").fetchone()
        return int(row[0]) if row else 0


# -- the catalogue, case by case ---------------------------------------------------------------

CATALOGUE = cases("abuse-")


@pytest.mark.parametrize("case", CATALOGUE, ids=[f"{c.kind}: {c.name}" for c in CATALOGUE])
def test_bad_input_gets_a_clear_answer_and_stores_nothing_partial(
    server: Server, database_url: str, case: Case
) -> None:
    before = total_events(database_url)
    answer = send(server.port, case.raw)
    assert answer.status in case.expect, (answer.status, answer.body[:300])
    after = total_events(database_url)
    if answer.status == 201:
        assert after == before + 1
        if case.stream is not None:
            # Stored under exactly the name that was sent: no normalisation, no replacement.
            assert len(stored(database_url, case.stream)) == 1
    else:
        assert answer.headers.get("content-type") == PROBLEM, answer.headers
        problem = answer.json()
        assert isinstance(problem, dict) and problem["status"] == answer.status and problem["detail"]
        assert after == before
        if case.stream is not None:
            assert stored(database_url, case.stream) == []


def test_duplicate_keys_keep_the_last_value(server: Server, database_url: str) -> None:
    stream = f"abuse-dupkeys-{uuid.uuid4().hex[:6]}"
    assert (
        send(
            server.port, append_request(stream, b'{"events": [{"type": "T", "data": {"a": 1, "a": 2}}]}')
        ).status
        == 201
    )
    assert stored(database_url, stream) == [("T", {"a": 2})]


# -- slow clients ------------------------------------------------------------------------------


def timed_healthz(port: int) -> float:
    """Seconds a normal client waits for /healthz."""
    answer = send(port, request("GET", "/healthz"), timeout=5)
    assert answer.status == 200
    return answer.seconds


def test_trickled_headers_get_408_while_others_are_served(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        started = time.monotonic()
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200
        waits = []
        for byte in head:
            try:
                slow.send(bytes([byte]))
            except OSError:
                break  # the server gave up on this client
            if len(waits) < 5:
                waits.append(timed_healthz(server.port))
            time.sleep(0.02)
        answer = read_answer(slow, started, timeout=5)
    assert answer.status == 408, answer
    assert answer.headers["content-type"] == PROBLEM
    assert HEADER_TIMEOUT - EARLY <= answer.seconds < HEADER_TIMEOUT + 3
    assert max(waits) < 1.0, waits  # the slow client never held up the others


def test_an_idle_connection_is_closed_without_an_answer(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        answer = read_answer(idle, time.monotonic(), timeout=10)
    assert answer.status == 0 and answer.body == b""
    assert HEADER_TIMEOUT - EARLY <= answer.seconds < HEADER_TIMEOUT + 3


def test_a_trickled_body_gets_408_and_stores_nothing(server: Server, database_url: str) -> None:
    stream = f"abuse-slowbody-{uuid.uuid4().hex[:6]}"
    body = event_body('{"x": "' + "z" * 300 + '"}')
    raw = append_request(stream, body)
    answer = trickle(server.port, raw, raw.index(b"\r\n\r\n") + 4, 0.02, timeout=5)
    assert answer.status == 408, answer
    assert answer.headers["connection"] == "close"
    assert BODY_TIMEOUT - EARLY <= answer.seconds < BODY_TIMEOUT + 3
    assert stored(database_url, stream) == []


def test_huge_headers_are_refused_before_they_are_all_read(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(5)
            for _ in range(2000):  # up to 16 MB of headers
                sock.sendall(b"X-Pad: " + b"p" * 8000 + b"\r\n")
                sent += 8000
        answer = read_answer(sock, started, timeout=5)
    assert answer.status == 431, answer
    assert sent < 8 * 1024 * 1024  # the server closed the connection long before the end


def test_one_endless_header_line_is_refused_too(server: Server) -> None:
    # httptools reports a header only when its line ends: one line that never ends must be
    # counted as it arrives, not after it (it would otherwise grow until the head's timeout).
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
            sock.settimeout(5)
            for _ in range(2000):  # up to 32 MB in one header value, never ended
                sock.sendall(b"e" * 16_000)
                sent += 16_000
                time.sleep(0.001)  # separate reads on the server
        answer = read_answer(sock, started, timeout=5)
    assert answer.status == 431, answer
    assert answer.seconds < HEADER_TIMEOUT  # refused for its size, not at the timeout
    assert sent < 2 * 1024 * 1024


# -- many SSE clients --------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_streams(server: Server) -> float:
    """The ilji_sse_connections gauge, summed over feeds."""
    with server.client() as client:
        text = client.get("/metrics").text
    return sum(float(m[1]) for m in re.finditer(r"^ilji_sse_connections\{[^}]*\} (\S+)$", text, re.M))


def wait_for(check: Callable[[], bool], timeout: float) -> None:
    """Poll until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@dataclass
class SseCrowd:
    """Many raw SSE connections to one server."""

    port: int
    sockets: list[socket.socket] = field(default_factory=list)

    def open(self, count: int) -> list[Answer]:
        """Open `count` streams of /v1/all; the status line and headers of each."""
        answers = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(b"GET /v1/all HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            self.sockets.append(sock)
        for sock in self.sockets[-count:]:
            sock.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            status = int(head.split(b" ", 2)[1])
            answers.append(Answer(status, {}, head, 0.0))
        return answers

    def close(self) -> None:
        """Close every connection."""
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def test_sse_streams_past_the_cap_get_503_and_slots_come_back(server: Server) -> None:
    before = rss_mb(server.proc.pid)
    crowd = SseCrowd(server.port)
    try:
        answers = crowd.open(SSE_CAP + 10)
        statuses = sorted(a.status for a in answers)
        assert statuses == [200] * SSE_CAP + [503] * 10
        refused = next(a for a in answers if a.status == 503)
        assert b"retry-after: 5" in refused.body.lower()
        assert open_streams(server) == SSE_CAP
        assert timed_healthz(server.port) < 1.0
        assert rss_mb(server.proc.pid) - before < 30  # a few hundred KiB per stream at most
    finally:
        crowd.close()
    wait_for(lambda: open_streams(server) == 0, 10)  # every stream ended when its client left
    again = SseCrowd(server.port)
    try:
        assert [a.status for a in again.open(SSE_CAP)] == [200] * SSE_CAP
    finally:
        again.close()
    wait_for(lambda: open_streams(server) == 0, 10)
