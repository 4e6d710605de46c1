"""Snapshots with `ilji.app`: a policy stores the folded state every N events, loads start there."""

import asyncio
import uuid
from dataclasses import dataclass

from ilji import PostgresSnapshotStore, Settings, load_settings, open_runtime
from ilji.app import AggregateType, DataclassStateCodec, Decider, EventRegistry, Repository, SnapshotPolicy

events = EventRegistry()


@events.register
@dataclass(frozen=True)
class SeatsReserved:
    quantity: int


@dataclass(frozen=True)
class ReserveSeats:
    quantity: int


@dataclass(frozen=True)
class Seats:
    reserved: int = 0


def decide(command: ReserveSeats, seats: Seats) -> list[SeatsReserved]:
    return [SeatsReserved(command.quantity)]


def evolve(seats: Seats, event: SeatsReserved) -> Seats:
    return Seats(seats.reserved + event.quantity)


# --8<-- [start:policy]
# A snapshot every 20 events, stored as JSON. Raise schema_version when Seats
# changes shape: snapshots of other versions are then ignored and rebuilt.
concert_type = AggregateType(
    "concert",
    Decider(decide, evolve, Seats),
    events,
    SnapshotPolicy(every=20, codec=DataclassStateCodec(Seats, schema_version=1)),
)
# --8<-- [end:policy]


# --8<-- [start:load]
async def main(settings: Settings | None = None) -> None:
    async with open_runtime(settings or load_settings()) as runtime:
        snapshots = PostgresSnapshotStore(runtime.store.database)  # ilji.snapshots
        concerts = Repository(
            runtime.store,
            concert_type,
            snapshots=snapshots,
        )
        concert = uuid.uuid4().hex[:8]
        for _ in range(50):
            await concerts.handle(concert, ReserveSeats(1))

        loaded = await concerts.load(concert)
        seen = (loaded.version, loaded.snapshot_version, loaded.events_folded)
        print(seen)  # (50, 40, 10): the snapshot at 40, then 10 events
        assert seen == (50, 40, 10)

        # A snapshot is a cache, never the source of truth: without it, the
        # fold of every event gives the same state.
        replayed = await concerts.load(concert, use_snapshots=False)
        assert replayed.state == loaded.state == Seats(50)
        assert replayed.events_folded == 50


# --8<-- [end:load]

if __name__ == "__main__":
    asyncio.run(main())
