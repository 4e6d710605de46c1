"""`ilji.client` against a real `ilji serve`: appends, reads, errors, retries, subscriptions.

The subscription test restarts the server under a running subscription and while appends go
on: every appended event must arrive exactly once, in order.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from ilji import NO_STREAM, DuplicateEventId, NewEvent, StreamNotFound, ValidationError, WrongExpectedVersion
from ilji.client import AsyncClient, Client, Forbidden, Unauthorized
from tests.e2e.server_helpers import (
    TOKEN_SPEC,
    TOKENS,
    Server,
    category_name,
    free_port,
    running_server,
    start_server,
    stream_name,
)

pytestmark = pytest.mark.slow

ENV = {"ILJI_ACCESS_LOG": "false", "ILJI_API_TOKENS": TOKEN_SPEC}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url, env=ENV) as s:
        yield s


@pytest.fixture
def writer(server: Server) -> Iterator[Client]:
    with Client(server.url, token=TOKENS["writer"], backoff=0.01) as client:
        yield client


def events(n: int, kind: str = "Tick") -> list[NewEvent]:
    return [NewEvent(kind, {"i": i}) for i in range(n)]


def test_append_and_read(writer: Client) -> None:
    category = category_name()
    stream = f"{category}-1"
    batch = events(5)
    result = writer.append(stream, batch, expected_version=NO_STREAM)
    assert (result.first_version, result.last_version, result.idempotent) == (1, 5, False)
    page = writer.read_stream(stream, limit=2)
    assert page.version == 5 and [e.version for e in page.events] == [1, 2]
    assert [e.id for e in page.events] == [batch[0].id, batch[1].id]
    assert page.events[0].data == {"i": 0} and page.events[0].recorded_at.tzinfo is not None
    newest = writer.read_stream(stream, limit=1, direction="backward")
    assert newest.events[0].version == 5
    assert [e.data["i"] for e in writer.iter_stream(stream, page_size=2)] == [0, 1, 2, 3, 4]
    writer.append(f"{category}-2", events(2, "Tock"), expected_version=0)
    in_category = list(writer.iter_category(category, page_size=3))
    assert [e.stream for e in in_category] == [stream] * 5 + [f"{category}-2"] * 2
    head = in_category[-1].position
    page_of_log = writer.read_all(after=in_category[0].position, limit=1000)
    assert [e.id for e in page_of_log.events][:6] == [e.id for e in in_category[1:7]]
    assert writer.read_category(category, after=head).events == []
    assert writer.read_category(category, after=head).next == head
    assert list(writer.iter_all(after=head + 10**12)) == []


def test_errors_are_the_library_exceptions(server: Server, writer: Client) -> None:
    stream = stream_name()
    first = NewEvent("Tick")
    writer.append(stream, [first])
    with pytest.raises(WrongExpectedVersion) as wrong:
        writer.append(stream, events(1), expected_version=0)
    assert (wrong.value.expected, wrong.value.actual) == (0, 1)
    with pytest.raises(DuplicateEventId) as duplicate:
        writer.append(stream_name(), [first])
    assert duplicate.value.event_ids == [str(first.id)]
    with pytest.raises(ValidationError) as invalid:
        writer.append(stream, [NewEvent("has space")])
    print("validation error:", invalid.value.field, "-", invalid.value)
    with pytest.raises(ValidationError):
        writer.append("$reserved", events(1))
    with pytest.raises(StreamNotFound):
        writer.read_stream(stream_name())
    with Client(server.url, token=TOKENS["reader"]) as reader, pytest.raises(Forbidden):
        reader.append(stream, events(1))
    with Client(server.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.read_all()


class LoseFirstAnswer(httpx.HTTPTransport):
    """Delivers the first request, then drops its answer, as a broken connection would."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = super().handle_request(request)
        if self.requests == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset after the request was sent")
        return response


def test_an_append_whose_answer_was_lost_is_retried_without_storing_twice(server: Server) -> None:
    stream = stream_name()
    transport = LoseFirstAnswer()
    batch = events(3)
    with Client(server.url, token=TOKENS["writer"], transport=transport, backoff=0.01) as client:
        result = client.append(stream, batch, expected_version=NO_STREAM)
        attempts = transport.requests
        stored = list(client.iter_stream(stream))
    print("attempts:", attempts, "idempotent:", result.idempotent, "stored:", len(stored))
    assert attempts == 2
    assert result.idempotent and (result.first_version, result.last_version) == (1, 3)
    assert [e.id for e in stored] == [e.id for e in batch]


async def test_the_async_client(server: Server) -> None:
    stream = stream_name()
    async with AsyncClient(server.url, token=TOKENS["writer"], backoff=0.01) as client:
        await client.append(stream, events(3), expected_version=NO_STREAM)
        assert [e.version async for e in client.iter_stream(stream, page_size=2)] == [1, 2, 3]
        page = await client.read_category(stream.split("-")[0], limit=1000)
        assert stream in {e.stream for e in page.events}
        with pytest.raises(WrongExpectedVersion):
            await client.append(stream, events(1), expected_version=1)
        async with client.subscribe_stream(stream, after_version=1) as subscription:
            got = [await anext(subscription), await anext(subscription)]
            await client.append(stream, events(1, "Late"))
            got.append(await anext(subscription))
        assert [(e.version, e.type) for e in got] == [(2, "Tick"), (3, "Tick"), (4, "Late")]


def test_a_subscription_survives_a_server_restart(database_url: str) -> None:
    port = free_port()
    category = category_name()
    appended: list[uuid.UUID] = []
    seen: list[uuid.UUID] = []
    total = 30

    options = {"token": TOKENS["admin"], "backoff": 0.05, "max_backoff": 0.5, "sse_timeout": 5.0}
    first = start_server(database_url, env=ENV, port=port)
    servers = [first]
    url = first.url
    with Client(url, retries=100, **options) as appender, Client(url, **options) as subscriber:
        subscription = subscriber.subscribe_category(category)

        def follow() -> None:
            for event in subscription:
                seen.append(event.id)
                if len(seen) >= total:
                    return

        def append_some(n: int, start: int) -> None:
            for i in range(start, start + n):
                event = NewEvent("Tick", {"i": i})
                appender.append(f"{category}-{i % 3}", [event])
                appended.append(event.id)

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        try:
            append_some(10, 0)
            while len(seen) < 10 and follower.is_alive():
                time.sleep(0.05)
            assert first.stop() == 0  # SIGTERM: the server drains and ends its event streams
            # Appends while the server is down: each is retried until the new server answers.
            during = threading.Thread(target=append_some, args=(10, 10))
            during.start()
            time.sleep(0.5)
            servers.append(start_server(database_url, env=ENV, port=port))
            during.join(timeout=60)
            append_some(10, 20)
            follower.join(timeout=60)
        finally:
            subscription.close()
            for s in servers:
                s.stop()
                s.log_path.unlink(missing_ok=True)
    duplicates = len(seen) - len(set(seen))
    missing = len(set(appended) - set(seen))
    print(
        f"appended {len(appended)}, seen {len(seen)}, duplicates {duplicates}, missing {missing}, "
        f"reconnects {subscription.reconnects}"
    )
    assert len(appended) == total
    assert seen == appended
    assert subscription.reconnects >= 1
