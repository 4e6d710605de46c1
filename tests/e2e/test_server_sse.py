"""Live subscriptions over Server-Sent Events: catch up, stay live, resume with Last-Event-ID."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.server_helpers import (
    Server,
    SseReader,
    append,
    category_name,
    running_server,
    start_server,
    stream_name,
)

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    # A small per-connection buffer, so the slow-client test fills it quickly.
    with running_server(database_url, env={"ILJI_SSE_QUEUE_SIZE": "8"}) as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=httpx.Timeout(10.0)) as c:
        yield c


def test_stream_catch_up_then_live_then_resume(server: Server, client: httpx.Client) -> None:
    stream = stream_name()
    append(client, stream, "A", "B", "C")
    with server.client(timeout=10) as sse, sse.stream("GET", f"/v1/streams/{stream}", headers=SSE) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(r)
        caught_up = [reader.next() for _ in range(3)]
        assert [(m.id, m.event) for m in caught_up] == [("1", "A"), ("2", "B"), ("3", "C")]
        event = json.loads(caught_up[0].data)
        assert (event["stream"], event["version"], event["type"], event["data"]) == (stream, 1, "A", {"i": 0})
        append(client, stream, "D", "E")  # live
        assert [(m.id, m.event) for m in (reader.next(), reader.next())] == [("4", "D"), ("5", "E")]
    # A browser reconnects with the last id it saw; that wins over from_version.
    headers = {**SSE, "Last-Event-ID": "4"}
    with (
        server.client(timeout=10) as sse,
        sse.stream("GET", f"/v1/streams/{stream}?from_version=1", headers=headers) as r,
    ):
        reader = SseReader(r)
        assert reader.next().id == "5"
        append(client, stream, "F")
        live = reader.next()
        assert (live.id, live.event) == ("6", "F")


def test_stream_from_version(server: Server, client: httpx.Client) -> None:
    stream = stream_name()
    append(client, stream, "A", "B", "C")
    with (
        server.client(timeout=10) as sse,
        sse.stream("GET", f"/v1/streams/{stream}?from_version=2", headers=SSE) as r,
    ):
        reader = SseReader(r)
        assert [reader.next().id, reader.next().id] == ["2", "3"]


def test_a_stream_without_events_waits_and_sends_heartbeats(server: Server, client: httpx.Client) -> None:
    stream = stream_name()
    append(client, f"{stream}x", "Other")  # same category, another stream: filtered out
    with server.client(timeout=10) as sse, sse.stream("GET", f"/v1/streams/{stream}", headers=SSE) as r:
        assert r.status_code == 200
        reader = SseReader(r)
        reader.next_comment()
        reader.next_comment()  # heartbeats every 0.5 s in these tests
        append(client, stream, "First")
        message = reader.next()
        assert (message.id, message.event) == ("1", "First")
        assert json.loads(message.data)["stream"] == stream


def test_global_log_catch_up_live_resume(server: Server, client: httpx.Client) -> None:
    stream = stream_name()
    first = append(client, stream, "A").json()
    after = first["first_position"] - 1
    with server.client(timeout=10) as sse, sse.stream("GET", f"/v1/all?after={after}", headers=SSE) as r:
        reader = SseReader(r)
        message = reader.next()
        assert (message.id, message.event) == (str(first["first_position"]), "A")
        second = append(client, stream, "B").json()
        while (message := reader.next()).event != "B":  # other tests may append meanwhile
            pass
        assert message.id == str(second["first_position"])
        assert json.loads(message.data)["position"] == second["first_position"]
    headers = {**SSE, "Last-Event-ID": str(first["first_position"])}
    with server.client(timeout=10) as sse, sse.stream("GET", "/v1/all?after=0", headers=headers) as r:
        reader = SseReader(r)
        assert reader.next().id == str(second["first_position"])


def test_category_catch_up_live_resume(server: Server, client: httpx.Client) -> None:
    category = category_name()
    a = append(client, f"{category}-1", "A").json()
    append(client, f"{category}z-1", "Elsewhere")
    with server.client(timeout=10) as sse, sse.stream("GET", f"/v1/categories/{category}", headers=SSE) as r:
        reader = SseReader(r)
        assert (reader.next().id) == str(a["first_position"])
        b = append(client, f"{category}-2", "B").json()
        message = reader.next()
        assert (message.id, message.event) == (str(b["first_position"]), "B")
    headers = {**SSE, "Last-Event-ID": str(a["first_position"])}
    with (
        server.client(timeout=10) as sse,
        sse.stream("GET", f"/v1/categories/{category}", headers=headers) as r,
    ):
        assert SseReader(r).next().event == "B"


@pytest.mark.parametrize(
    "url", ["/v1/all", "/v1/categories/x", "/v1/streams/x-1"], ids=["all", "category", "stream"]
)
def test_a_bad_last_event_id_is_a_problem(client: httpx.Client, url: str) -> None:
    for bad in ("abc", "-1", "1.5", str(2**53)):
        response = client.get(url, headers={**SSE, "Last-Event-ID": bad})
        assert response.status_code == 400, bad
        assert response.headers["content-type"].startswith("application/problem+json")


def test_bad_names_are_refused_before_streaming(client: httpx.Client) -> None:
    for url in ("/v1/categories/a-b", "/v1/streams/a%20b"):
        response = client.get(url, headers=SSE)
        assert response.status_code in (400, 422)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_a_slow_client_does_not_hold_up_others(server: Server, client: httpx.Client) -> None:
    category = category_name()
    # A client that asks for everything and never reads: its socket buffers fill up.
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"GET /v1/categories/{category} HTTP/1.1\r\nHost: localhost\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    try:
        blob = "x" * 20_000
        for n in range(10):
            body = {"events": [{"type": "Big", "data": {"blob": blob, "n": n}} for _ in range(20)]}
            assert client.post(f"/v1/streams/{category}-big", json=body).status_code == 201
        with server.client(timeout=10) as sse:
            started = time.monotonic()
            with sse.stream("GET", f"/v1/streams/{category}-live", headers=SSE) as r:
                reader = SseReader(r)
                append(client, f"{category}-live", "Live")
                assert reader.next().event == "Live"
            assert time.monotonic() - started < 5
        metrics = client.get("/metrics").text
        open_streams = re.search(r'ilji_sse_connections\{feed="category"\} ([0-9.]+)', metrics)
        assert open_streams is not None
        assert float(open_streams[1]) >= 1  # the stalled client is still connected
    finally:
        stalled.close()


def drain_messages(reader: SseReader) -> None:
    while True:
        reader.next()


def test_sigterm_closes_sse_streams_within_the_bound(database_url: str) -> None:
    server = start_server(database_url, env={"ILJI_SHUTDOWN_TIMEOUT": "20"})
    try:
        with server.client(timeout=10) as sse, sse.stream("GET", "/v1/all", headers=SSE) as r:
            reader = SseReader(r)
            reader.next_comment()
            started = time.monotonic()
            server.proc.terminate()
            with pytest.raises(EOFError):  # the server ends the stream itself
                drain_messages(reader)
            assert time.monotonic() - started < 5
        assert server.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10  # well within the 20 s bound
    finally:
        server.stop()
    assert "Traceback" not in server.log()
