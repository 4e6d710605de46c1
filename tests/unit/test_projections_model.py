"""Projections without a database: partitioning, retries, validation, status rules, loading."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

import ilji.projections
from ilji import RecordedEvent, ValidationError
from ilji.cli.worker import load_projections
from ilji.projections import Context, PartitionStatus, Projection, ProjectionStatus, partition_of
from ilji.projections.admin import _partition_state
from ilji.projections.failures import is_infrastructure_error
from ilji.projections.metrics import Rate
from ilji.projections.projection import retry_delay, validate_projection


class Sample(Projection):
    """A valid projection used by these tests."""

    name = "sample"


def test_partition_of_is_stable_and_spreads_streams() -> None:
    # Fixed values: every worker process, on any machine, must agree on these forever.
    assert partition_of("order-1", 1) == 0
    assert [partition_of(f"order-{i}", 4) for i in range(6)] == [
        partition_of(f"order-{i}", 4) for i in range(6)
    ]
    assert partition_of("order-1", 4) == 3769860079 % 4 == 3
    counts = [0] * 8
    for i in range(8000):
        counts[partition_of(f"s-{i}", 8)] += 1
    assert min(counts) > 800


def test_partition_of_does_not_depend_on_the_process_hash_seed() -> None:
    code = "from ilji.projections import partition_of; print(partition_of('ship-42', 7))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{partition_of('ship-42', 7)}\n"}


def test_retry_delay_doubles_up_to_the_cap() -> None:
    class P(Sample):
        retry_delay = 0.1
        max_retry_delay = 0.5

    assert [retry_delay(P(), n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_context_names_tables_per_version_and_keys_side_effects_per_event() -> None:
    ctx = Context("seats", 3, 1, 4, "w1", 7)
    assert ctx.table("availability") == "availability_v3"
    event_id = uuid.uuid4()
    event = RecordedEvent(event_id, "s-1", 1, 4096, "T", {}, {}, datetime.now(UTC))
    assert ctx.idempotency_key(event) == f"seats:{event_id}"
    # The key does not depend on who applies the event, or when.
    assert Context("seats", 3, 0, 4, "w2", 9).idempotency_key(event) == ctx.idempotency_key(event)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("name", ""),
        ("name", "Bad-Name"),
        ("version", 0),
        ("partitions", 0),
        ("batch_size", 0),
        ("batch_size", 10_001),
        ("on_poison", "ignore"),
        ("max_attempts", 0),
        ("types", "OneType"),
    ],
)
def test_invalid_projections_are_refused(attribute: str, value: object) -> None:
    cls = type("Bad", (Sample,), {attribute: value})
    with pytest.raises(ValidationError):
        validate_projection(cls())


def test_default_handle_says_what_to_implement() -> None:
    coroutine = Sample().handle(None, None, None)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="handle"):
        asyncio.run(coroutine)


def test_infrastructure_errors_are_not_poison() -> None:
    import psycopg

    from ilji import StoreUnavailable

    assert is_infrastructure_error(psycopg.OperationalError("gone"))
    assert is_infrastructure_error(StoreUnavailable("down"))
    assert is_infrastructure_error(ConnectionResetError())
    assert not is_infrastructure_error(ValueError("bad data"))
    assert not is_infrastructure_error(psycopg.errors.UniqueViolation("dup"))


def test_rate_counts_events_per_second() -> None:
    rate = Rate()
    assert rate.add(500) == pytest.approx(100.0)  # one sample: spread over the window
    assert rate.add(500) > 0


@pytest.mark.parametrize(
    ("status", "paused", "live", "state"),
    [
        ("running", False, True, "running"),
        ("catching_up", False, True, "catching_up"),
        ("running", False, False, "stopped"),
        ("running", True, False, "paused"),
        ("failed", True, False, "failed"),
        ("retired", False, False, "retired"),
    ],
)
def test_partition_state(status: str, paused: bool, live: bool, state: str) -> None:
    assert _partition_state(status, paused, live) == state


def _part(state: str, checkpoint: int = 10, behind: int = 0, lag: float = 0.0) -> PartitionStatus:
    return PartitionStatus(
        "p",
        1,
        0,
        2,
        True,
        state,
        checkpoint,
        100,
        behind,
        False,
        lag,
        5.0,
        7,
        "w",
        1,
        None,
        1,
        None,  # type: ignore[arg-type]
        datetime.now(UTC),
    )


def test_projection_status_aggregates_its_partitions() -> None:
    st = ProjectionStatus(
        "p",
        1,
        None,
        False,
        None,
        None,
        partitions=[_part("running", 10, 0), _part("catching_up", 4, 30, 2.5)],
    )
    assert st.state == "catching_up"
    assert (st.checkpoint, st.events_behind, st.lag_seconds, st.parked) == (4, 30, 2.5, 2)
    assert st.events_per_second == 10.0
    assert st.partitions[0].positions_behind == 90
    assert ProjectionStatus("p", 1, None, True, None, None, partitions=[_part("running")]).state == "paused"
    failed = ProjectionStatus("p", 1, None, False, None, None, partitions=[_part("running"), _part("failed")])
    assert failed.state == "failed"


def test_load_projections_accepts_instances_classes_factories_and_lists() -> None:
    here = __name__
    assert [p.name for p in load_projections(f"{here}:Sample")] == ["sample"]
    assert [p.name for p in load_projections(f"{here}:INSTANCE")] == ["sample"]
    assert [p.name for p in load_projections(f"{here}:several")] == ["sample", "sample"]
    with pytest.raises(ValidationError):
        load_projections(f"{here}")
    with pytest.raises(ValidationError):
        load_projections(f"{here}:NOT_A_PROJECTION")


INSTANCE = Sample()
NOT_A_PROJECTION = 42


def several() -> list[Projection]:
    return [Sample(), Sample()]


def test_public_api_is_curated() -> None:
    aliases = {"Connection", "PoisonPolicy"}  # type aliases, documented where defined
    for name in set(ilji.projections.__all__) - aliases:
        assert getattr(ilji.projections, name).__doc__, name


# -- which versions a code may run (ilji.projections.versions) --------------------------------


def _code(version: int, partitions: int = 1) -> Projection:
    cls = type("Code", (Projection,), {"name": "p", "version": version, "partitions": partitions})
    return cls()


def test_plan_serves_only_versions_built_by_the_same_code() -> None:
    from ilji.projections.versions import StoredVersion, plan

    v1 = {1: StoredVersion(1, 1)}
    both = {**v1, 2: StoredVersion(2, 2)}
    # A fresh projection: create version 1 first.
    assert plan(_code(1), 1, None, {}).create == (1,)
    # Old code serves; new code builds version 2 and never runs version 1.
    assert plan(_code(1), 1, None, both).run == (1,)
    new = plan(_code(2, partitions=2), 1, None, both)
    assert (new.run, new.target, new.state) == ((2,), 2, "building")
    assert plan(_code(2, partitions=2), 1, None, v1).create == (2,)
    # After the cutover the old code stands idle.
    old = plan(_code(1), 2, None, both)
    assert (old.run, old.state, old.error) == ((), "idle", None)
    # `ilji projections rebuild`: the serving code builds the requested version (same code).
    rebuilt = {**v1, 2: StoredVersion(1, 1)}
    assert plan(_code(1), 1, 2, v1).create == (2,)
    assert plan(_code(1), 1, 2, rebuilt).target == 2
    assert plan(_code(1), 2, None, rebuilt).run == (2,)
    # ... and code that calls itself version 2 cannot take that version over.
    refused = plan(_code(2), 2, None, rebuilt)
    assert refused.state == "refused" and refused.error and "above 2" in refused.error


def test_plan_refuses_another_partition_count_for_an_existing_version() -> None:
    from ilji.projections.versions import StoredVersion, plan

    chosen = plan(_code(1, partitions=4), 1, None, {1: StoredVersion(1, 1)})
    assert (chosen.run, chosen.state) == ((), "refused")
    assert chosen.error and "has 1 partition(s)" in chosen.error and "asks for 4" in chosen.error
    # A version created before code versions were recorded runs with code not above it.
    assert plan(_code(1), 1, None, {1: StoredVersion(1, None)}).run == (1,)
    assert plan(_code(2), 1, None, {1: StoredVersion(1, None)}).run == ()


def test_handler_errors_are_judged_by_where_they_came_from() -> None:
    import psycopg

    from ilji.projections.failures import handler_error_is_infrastructure

    class Conn:
        broken = False
        closed = False

    healthy, broken = Conn(), Conn()
    broken.broken = True
    timeout = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    locked = psycopg.errors.LockNotAvailable("could not obtain lock on row")
    # OperationalErrors of the handler's own statements count as attempts ...
    assert not handler_error_is_infrastructure(timeout, healthy)  # type: ignore[arg-type]
    assert not handler_error_is_infrastructure(locked, healthy)  # type: ignore[arg-type]
    assert not handler_error_is_infrastructure(ValueError("bug"), healthy)  # type: ignore[arg-type]
    # ... a lost connection, a server shutting down or the driver's own failure do not.
    assert handler_error_is_infrastructure(timeout, broken)  # type: ignore[arg-type]
    shutdown = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    assert handler_error_is_infrastructure(shutdown, healthy)  # type: ignore[arg-type]
    assert handler_error_is_infrastructure(psycopg.OperationalError("no connection"), healthy)  # type: ignore[arg-type]
    assert handler_error_is_infrastructure(ConnectionResetError(), healthy)  # type: ignore[arg-type]


def test_stored_error_texts_keep_no_values() -> None:
    from ilji.projections.failures import MAX_ERROR_LENGTH, describe_error

    assert describe_error(KeyError("alice@example.com")) == "KeyError: '…'"
    assert describe_error(ValueError("no seat for bob@example.com\nmore")) == "ValueError: no seat for …"
    text = describe_error(ValueError('invalid input syntax for type integer: "Alice Kim"'))
    assert text == 'ValueError: invalid input syntax for type integer: "…"'
    kept = 'duplicate key value violates unique constraint "people_email_key"'
    assert describe_error(RuntimeError(kept)) == f"RuntimeError: {kept}"
    assert len(describe_error(ValueError("x" * 1000))) == MAX_ERROR_LENGTH
    assert describe_error(ValueError()) == "ValueError"


def test_projection_code_failures_are_told_apart_once() -> None:
    import psycopg

    from ilji import StoreUnavailable
    from ilji.projections.failures import HandlerFailed, run_handler

    class Conn:
        broken = False
        closed = False

    async def raising(exc: BaseException) -> None:
        raise exc

    def outcome(exc: BaseException) -> BaseException:
        try:
            asyncio.run(run_handler(Conn(), raising(exc)))  # type: ignore[arg-type]
        except Exception as raised:
            return raised
        raise AssertionError("run_handler swallowed the error")

    bug = outcome(ValueError("no seat for bob@example.com"))
    assert isinstance(bug, HandlerFailed) and bug.error == "ValueError: no seat for …"
    timeout = outcome(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
    assert isinstance(timeout, HandlerFailed), "the handler's own statement timeout counts as an attempt"
    gone = outcome(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert isinstance(gone, StoreUnavailable) and "administrator command" in str(gone)
    unavailable = StoreUnavailable("down")
    assert outcome(unavailable) is unavailable
    asyncio.run(run_handler(Conn(), asyncio.sleep(0)))  # type: ignore[arg-type]


def test_a_worker_given_a_url_says_how_to_give_it_a_store() -> None:
    from ilji.projections import Worker

    with pytest.raises(TypeError, match=r"PostgresEventStore\.open\(url, \*\*store_options"):
        Worker("postgresql:///ilji", [Sample()])  # type: ignore[arg-type]


def test_a_workers_store_has_connections_for_every_partition_and_a_rebuild() -> None:
    from ilji.projections import store_options

    four = type("Four", (Sample,), {"name": "four", "partitions": 4})()
    options = store_options([Sample(), four], lease_ttl=2.5)
    assert options == {"min_size": 1, "max_size": 3 * (1 + 4) * 2 + 4, "idle_in_transaction_timeout_ms": 5000}
    many = type("Many", (Sample,), {"name": "many", "partitions": 64})()
    assert store_options([many])["max_size"] == 100
