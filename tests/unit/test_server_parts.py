"""The server's parts, by name and without a running server: the If-Match parser, the problem
table, and handlers called as plain functions on a `ServerState`."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from ilji.app import DomainViews
from ilji.domain.decider import CommandRejected
from ilji.domain.errors import StoreUnavailable, ValidationError, WrongExpectedVersion
from ilji.domain.events import EXISTS, MAX_SAFE_POSITION
from ilji.server.auth import parse_tokens
from ilji.server.factory import create_app
from ilji.server.metrics import Metrics
from ilji.server.preconditions import PreconditionFailed, etag, expected_from_if_match
from ilji.server.probe_routes import healthz, readyz
from ilji.server.problems import error_response, status_of
from ilji.server.sse import SseSlots
from ilji.server.state import Drain, ServerState
from ilji.settings import Settings


@pytest.mark.parametrize(("header", "expected"), [("3", 3), ('"3"', 3), (' W/"12" ', 12), ("*", EXISTS)])
def test_if_match_states_a_version_as_an_etag_does(header: str, expected: object) -> None:
    assert expected_from_if_match(header) == expected


@pytest.mark.parametrize("header", ["", "three", "-1", "3.0", "٣", str(MAX_SAFE_POSITION + 1)])
def test_an_if_match_that_is_no_version_is_refused_naming_the_header(header: str) -> None:
    with pytest.raises(ValidationError, match="If-Match"):
        expected_from_if_match(header)


def test_the_etag_of_a_version_reads_back_as_that_version() -> None:
    assert expected_from_if_match(etag(42)) == 42


class SeatsUnavailable(CommandRejected):
    code = "seats-unavailable"


def test_a_rule_that_refuses_a_command_is_a_409_problem_named_by_the_rule() -> None:
    response = error_response(SeatsUnavailable("only 2 seats left"))
    assert response.status_code == 409
    assert b'"type":"urn:ilji:problem:seats-unavailable"' in bytes(response.body)
    assert b'"detail":"only 2 seats left"' in bytes(response.body)


def test_a_failed_if_match_is_412_where_the_same_conflict_in_the_body_is_409() -> None:
    conflict = WrongExpectedVersion("order-1", 3, 4)
    assert status_of(conflict) == 409
    assert status_of(PreconditionFailed.of(conflict)) == 412


def _state() -> ServerState:
    return ServerState(
        settings=Settings(),
        tokens=parse_tokens(None),
        metrics=Metrics(dict),
        drain=Drain(),
        sse_slots=SseSlots(1),
        views=DomainViews(),
    )


def test_liveness_answers_without_a_store() -> None:
    assert asyncio.run(healthz()).body == b'{"status":"ok"}'


def test_readiness_fails_while_the_server_drains() -> None:
    server = _state()
    server.drain.event.set()
    with pytest.raises(StoreUnavailable, match="shutting down"):
        asyncio.run(readyz(server))


def test_a_state_without_its_store_yet_says_so_instead_of_failing_later() -> None:
    with pytest.raises(StoreUnavailable, match="not opened its store"):
        _ = _state().store


def test_a_405_names_every_method_of_the_url_across_routers() -> None:
    # The stream URL has two routes (POST is the plain append route, GET a router's).
    client = TestClient(create_app(Settings()), base_url="http://127.0.0.1")
    answer = client.request("OPTIONS", "/v1/streams/order-42")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
