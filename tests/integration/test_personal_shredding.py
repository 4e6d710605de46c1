"""Crypto-shredding on PostgreSQL: forget one of two customers, then look everywhere.

After the key of one subject is deleted, its personal fields must be unreadable in the stored
rows, in reads through the app layer and in projections rebuilt from position 0 (the in-process
`ProjectionRunner` and an `ilji.projections` worker), while every event still replays.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pytest
from psycopg import sql

from ilji import NewEvent, PostgresEventStore, RecordedEvent
from ilji.app import MemoryCheckpointStore, ProjectionRunner, Repository
from ilji.app.personal import ERASED_KEY, PersonalData, PersonalDataStore, erased_fields, is_envelope
from ilji.projections import (
    Context,
    Projection,
    Worker,
    rebuild_progress,
    request_rebuild,
    store_options,
    wait_for_position,
)
from ilji.projections.projection import Connection
from ilji.store.subject_keys import ForgottenSubject, PostgresKeyStore, SubjectForgotten, SubjectKey
from tests.unit.test_personal_data import (
    Address,
    ChangePlan,
    Customer,
    CustomerDirectory,
    CustomerMoved,
    CustomerRegistered,
    Move,
    Register,
    customer_events,
    customer_type,
    new_id,
    personal_data,
)


@dataclass(frozen=True)
class World:
    pg: PostgresEventStore
    keys: PostgresKeyStore
    personal: PersonalData
    store: PersonalDataStore


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    pg = await PostgresEventStore.open(database_url, max_size=10, poll_interval=0.2)
    keys = PostgresKeyStore(pg.database)
    personal = personal_data(keys)
    try:
        yield World(pg, keys, personal, personal.store(pg))
    finally:
        await pg.close()


async def _rows(pg: PostgresEventStore, query: str, *params: object) -> list[tuple[object, ...]]:
    async with pg.database.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


class DirectoryTable(Projection):
    """An `ilji.projections` read model: handlers decrypt the events they get from the worker."""

    name = "customer_directory"
    category = "customer"
    batch_size = 100

    def __init__(self, personal: PersonalData) -> None:
        self.personal = personal

    async def setup(self, conn: Connection, ctx: Context) -> None:
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (customer_id text PRIMARY KEY, name text, email text,"
                " plan text, erased text[] NOT NULL DEFAULT '{{}}')"
            ).format(sql.Identifier(ctx.table(self.name)))
        )

    async def apply(self, conn: Connection, events: Sequence[RecordedEvent], ctx: Context) -> None:
        table = sql.Identifier(ctx.table(self.name))
        for event in await self.personal.decrypt_many(events):
            if event.type != "CustomerRegistered":
                continue
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (customer_id, name, email, plan, erased) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name,"
                    " email = EXCLUDED.email, plan = EXCLUDED.plan, erased = EXCLUDED.erased"
                ).format(table),
                (
                    event.data["customer_id"],
                    event.data["name"],
                    event.data["email"],
                    event.data["plan"],
                    sorted(erased_fields(event)),
                ),
            )


async def test_a_forgotten_subject_is_unreadable_everywhere_and_every_event_still_replays(
    world: World, database_url: str
) -> None:
    customers = Repository(world.store, customer_type)
    ann, bob = new_id(), new_id()
    secrets = {
        ann: ["Ann Kim", "ann.kim@example.com", "Sejong-daero 110", "Seoul"],
        bob: ["Bob Lee", "bob.lee@example.com", "Haeundae-ro 264", "Busan"],
    }
    for cid, (name, email, street, city) in secrets.items():
        await customers.handle(cid, Register(cid, name, email, "basic"))
        await customers.handle(cid, Move(cid, Address(street, city)))
        await customers.handle(cid, ChangePlan(cid, "pro"))
    streams = [customers.stream(cid) for cid in (ann, bob)]
    before = {s: await world.pg.read_stream(s) for s in streams}

    # An ilji.projections worker builds its read model while both customers are readable.
    projections = [DirectoryTable(world.personal)]
    worker_db = await PostgresEventStore.open(database_url, **store_options(projections, lease_ttl=2))
    worker = Worker(
        worker_db,
        projections,
        worker_id="w",
        lease_ttl=2,
        poll_interval=0.1,
        control_interval=0.2,
    )
    run = asyncio.create_task(worker.run())
    try:
        head = max(e.position for events in before.values() for e in events)
        await wait_for_position(world.pg, DirectoryTable.name, head, timeout=20)
        [(name_v1,)] = await _rows(
            world.pg, 'SELECT name FROM "customer_directory_v1" WHERE customer_id = %s', ann
        )
        assert name_v1 == "Ann Kim"

        record = await world.personal.forget_subject(ann, by="dpo@example.com", reason="erasure request")
        assert record.key_deleted and record.subject == ann

        # (1) The store: no plaintext of either customer's personal fields in any stored row
        # (Bob's are encrypted too, just still readable), and Ann's key is gone.
        raw = [str(row[0]) for row in await _rows(world.pg, "SELECT data::text FROM ilji.events")]
        for values in secrets.values():
            for value in values:
                assert not any(value in row for row in raw), value
        key_rows = {
            row[0]: row[1:]
            for row in await _rows(
                world.pg,
                "SELECT subject, key IS NULL, forgotten_at IS NOT NULL, forgotten_by, reason"
                " FROM ilji.subject_keys WHERE subject = ANY(%s)",
                [ann, bob],
            )
        }
        assert key_rows == {
            ann: (True, True, "dpo@example.com", "erasure request"),
            bob: (False, False, None, None),
        }

        # (2) Reads through the app layer: Ann's personal fields erased, Bob's intact.
        assert (await customers.load(ann)).state == Customer(True, None, None, None, "pro", 1)
        assert (await customers.load(bob)).state == Customer(
            True, "Bob Lee", "bob.lee@example.com", Address("Haeundae-ro 264", "Busan"), "pro", 1
        )
        history = await customers.history(ann)
        assert [erased_fields(h.recorded) for h in history] == [{"name", "email"}, {"address"}, frozenset()]
        assert history[0].event == CustomerRegistered(ann, None, None, "basic")
        with pytest.raises(SubjectForgotten):
            await customers.handle(ann, Move(ann, Address("Somewhere 1", "Daegu")))

        # (3a) A projection rebuilt from position 0 in this process shows the erased marker.
        directory = CustomerDirectory()
        runner = ProjectionRunner(world.store, directory, MemoryCheckpointStore(), category="customer")
        assert await runner.rebuild() >= 6
        assert directory.rows[ann] == {
            "name": "[erased]",
            "email": "[erased]",
            "plan": "pro",
            "city": "[erased]",
        }
        assert directory.rows[bob] == {
            "name": "Bob Lee",
            "email": "bob.lee@example.com",
            "plan": "pro",
            "city": "Busan",
        }

        # (3b) The worker's read model, rebuilt from position 0 (version 2), cut over.
        assert await request_rebuild(world.pg, DirectoryTable.name) == 2
        async with asyncio.timeout(30):
            async for progress in rebuild_progress(world.pg, DirectoryTable.name, interval=0.1):
                if progress.done:
                    break
        rebuilt = {
            row[0]: row[1:]
            for row in await _rows(
                world.pg,
                'SELECT customer_id, name, email, plan, erased FROM "customer_directory_v2"'
                " WHERE customer_id = ANY(%s)",
                [ann, bob],
            )
        }
        assert rebuilt == {
            ann: (None, None, "basic", ["email", "name"]),
            bob: ("Bob Lee", "bob.lee@example.com", "basic", []),
        }
    finally:
        await worker.stop()
        await asyncio.wait_for(run, 15)
        await worker_db.close()

    # (4) Every event still replays: same ids, versions and positions; non-personal fields as
    # stored; each decodes to its typed event; only the personal fields differ.
    for stream in streams:
        stored = await world.pg.read_stream(stream)
        read = await world.store.read_stream(stream)
        assert [(e.id, e.version, e.position, e.type) for e in stored] == [
            (e.id, e.version, e.position, e.type) for e in before[stream]
        ]
        assert [(e.id, e.version, e.position, e.type) for e in read] == [
            (e.id, e.version, e.position, e.type) for e in stored
        ]
        for raw_event, event in zip(stored, read, strict=True):
            personal = {k for k, v in raw_event.data.items() if is_envelope(v)}
            assert {k: v for k, v in event.data.items() if k not in personal} == {
                k: v for k, v in raw_event.data.items() if k not in personal
            }
            assert {k: v for k, v in event.metadata.items() if k != ERASED_KEY} == raw_event.metadata
            customer_events.decode(event)  # decodes (raises on failure)
    assert [e.version for e in await world.store.read_stream(streams[0])] == [1, 2, 3]


async def test_the_first_key_of_a_subject_is_created_once_under_concurrency(world: World) -> None:
    subject = new_id()
    other = PostgresKeyStore(world.pg.database)
    keys = await asyncio.gather(*(k.key_for_writing(subject) for k in [world.keys, other] * 10))
    assert len({(k.key_id, k.key) for k in keys}) == 1
    assert await world.keys.keys_for_reading([subject, "nobody"]) == {subject: keys[0]}


async def test_forgetting_on_postgres_is_idempotent_and_records_subjects_never_seen(world: World) -> None:
    subject = new_id()
    key = await world.keys.key_for_writing(subject)
    first = await world.keys.forget(subject, by="ops", reason="test")
    again = await world.keys.forget(subject, by="other")
    assert (first.key_deleted, first.key_id, first.forgotten_by) == (True, key.key_id, "ops")
    assert (again.key_deleted, again.forgotten_at, again.forgotten_by) == (False, first.forgotten_at, "ops")
    stranger = new_id()
    tombstone = await world.keys.forget(stranger, reason="asked before ever registering")
    assert not tombstone.key_deleted and tombstone.reason == "asked before ever registering"
    for s in (subject, stranger):
        with pytest.raises(SubjectForgotten):
            await world.keys.key_for_writing(s)
    assert await world.keys.keys_for_reading([subject, stranger]) == {}


class SlowKeys:
    """The key store of issue 13: it reads at once, then takes 200 ms to answer."""

    def __init__(self, inner: PostgresKeyStore) -> None:
        self.inner = inner
        self.fetched = asyncio.Event()

    async def key_for_writing(self, subject: str) -> SubjectKey:
        key = await self.inner.key_for_writing(subject)
        self.fetched.set()
        await asyncio.sleep(0.2)
        return key

    async def keys_for_reading(self, subjects: Iterable[str]) -> Mapping[str, SubjectKey]:
        keys = await self.inner.keys_for_reading(subjects)
        self.fetched.set()
        await asyncio.sleep(0.2)
        return keys

    async def forget(
        self, subject: str, *, by: str | None = None, reason: str | None = None
    ) -> ForgottenSubject:
        return await self.inner.forget(subject, by=by, reason=reason)


async def test_after_forget_subject_returns_nothing_in_flight_brings_the_plaintext_back(world: World) -> None:
    ann = new_id()
    stream = f"customer-{ann}"
    await world.store.append(
        stream, [customer_events.encode(CustomerRegistered(ann, "Ann", "ann@x", "basic"))]
    )
    keys = SlowKeys(world.keys)
    personal = personal_data(keys)
    reading = asyncio.create_task(personal.store(world.pg).read_stream(stream))
    await keys.fetched.wait()  # the lookup has read Ann's live key and is on its way back
    await personal.forget_subject(ann)
    for event in [*await reading, *await personal.store(world.pg).read_stream(stream)]:
        assert (event.data["name"], event.data["email"]) == (None, None)

    # The write path: a key lookup that overlapped the forget stores nothing.
    bob = new_id()
    await world.keys.key_for_writing(bob)
    keys.fetched.clear()
    moved = customer_events.encode(CustomerMoved(bob, Address("Main St 1", "Busan")))
    writing = asyncio.create_task(personal.store(world.pg).append(f"customer-{bob}", [moved]))
    await keys.fetched.wait()
    await personal.forget_subject(bob)
    with pytest.raises(SubjectForgotten):
        await writing
    assert await world.pg.read_stream(f"customer-{bob}") == []


async def test_an_envelope_lookalike_in_an_undeclared_field_does_not_stop_readers(world: World) -> None:
    customers = Repository(world.store, customer_type)
    ann = new_id()
    await customers.handle(ann, Register(ann, "Ann", "ann@x", "basic"))
    # Appended by any writer of the raw store (the HTTP API stores events as sent).
    lookalike = {"$personal": {"subject": ann}}
    await world.pg.append(
        customers.stream(ann), [NewEvent("PlanChanged", {"customer_id": ann, "plan": lookalike})]
    )
    registered, changed = await world.store.read_stream(customers.stream(ann))
    assert (registered.data["email"], changed.data["plan"]) == ("ann@x", lookalike)
    assert [
        e.position for e in await world.store.read_all(0, 10_000) if e.stream == customers.stream(ann)
    ] == [
        registered.position,
        changed.position,
    ]
