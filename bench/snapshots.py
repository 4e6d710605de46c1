"""Load time of a 10,000-event stream, with and without snapshots.

    python bench/snapshots.py            # a throwaway embedded PostgreSQL
    python bench/snapshots.py --url URL  # an existing server (database 'ilji_bench_snapshots' is recreated)

Each case loads the stream's current state through `Repository.load` several times and reports
the median and the best time. "Without" folds every event; "with" reads the newest snapshot,
checks its anchor event, and folds the events after it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from _common import BenchServer
from ilji import PostgresEventStore
from ilji.app import AggregateType, DataclassStateCodec, Decider, EventRegistry, Repository, SnapshotPolicy
from ilji.store.migrate import migrate
from ilji.store.snapshots import PostgresSnapshotStore

DB = "ilji_bench_snapshots"

events = EventRegistry()


@events.register
@dataclass(frozen=True)
class Deposited:
    """Money came in."""

    amount: int
    reference: str


@dataclass(frozen=True)
class Deposit:
    """Put money in."""

    amount: int


@dataclass(frozen=True)
class Account:
    """A balance and how many deposits made it."""

    balance: int = 0
    deposits: int = 0


def decide(command: Deposit, state: Account) -> list[Deposited]:
    """Every deposit is accepted."""
    return [Deposited(command.amount, f"dep-{state.deposits + 1}")]


def evolve(state: Account, event: Deposited) -> Account:
    """Add the deposit."""
    return replace(state, balance=state.balance + event.amount, deposits=state.deposits + 1)


def account_type(every: int | None) -> AggregateType[Deposit, Deposited, Account]:
    """The account model, with a snapshot policy or none."""
    policy = SnapshotPolicy(every=every, codec=DataclassStateCodec(Account)) if every else None
    return AggregateType("account", Decider(decide, evolve, Account), events, policy)


async def timed(label: str, load: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Run `load` `repeat` times after one warm-up call; print and return the times in ms."""
    await load()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await load()
        times.append((time.perf_counter() - started) * 1000)
    print(f"  {label:<44} median {statistics.median(times):8.2f} ms   best {min(times):8.2f} ms")
    return times


async def run(url: str, events_count: int, repeat: int) -> None:
    """Fill one stream, then time the loads."""
    await migrate(url)
    async with await PostgresEventStore.open(url, max_size=4, notify=False) as store:
        snapshots = PostgresSnapshotStore(store.database)
        stream_id = "bench"
        stream = account_type(None).stream(stream_id)
        batch = 1000
        for start in range(0, events_count, batch):
            new = [
                events.encode(Deposited(1, f"dep-{n}"))
                for n in range(start + 1, min(start + batch, events_count) + 1)
            ]
            await store.append(stream, new)
        print(f"stream {stream!r}: {await store.stream_version(stream):,} events")

        plain = Repository(store, account_type(None))
        with_snapshots = Repository(store, account_type(1000), snapshots=snapshots)
        without = await timed(
            "without snapshots (fold all events)", lambda: plain.load(stream_id, use_snapshots=False), repeat
        )
        await with_snapshots.take_snapshot(stream_id)
        latest = await with_snapshots.load(stream_id)
        assert latest.snapshot_version == events_count and latest.state == (await plain.load(stream_id)).state
        exact = await timed(
            f"with a snapshot at {events_count:,} (tail of 0)", lambda: with_snapshots.load(stream_id), repeat
        )
        # A stream usually has a short tail after its newest snapshot.
        await store.append(stream, [events.encode(Deposited(1, "tail")) for _ in range(500)])
        tail = await timed(
            f"with a snapshot at {events_count:,} (tail of 500)",
            lambda: with_snapshots.load(stream_id, use_snapshots=True),
            repeat,
        )
        print(
            f"speed-up: {statistics.median(without) / statistics.median(exact):.0f}× (no tail), "
            f"{statistics.median(without) / statistics.median(tail):.0f}× (tail of 500)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an existing server to use instead of a throwaway embedded one")
    parser.add_argument("--events", type=int, default=10_000, help="events in the stream")
    parser.add_argument("--repeat", type=int, default=20, help="timed loads per case")
    args = parser.parse_args(argv)
    with BenchServer.open(args.url) as server:
        url = server.recreate_database(DB)
        print(f"server: {server.description}")
        try:
            asyncio.run(run(url, args.events, args.repeat))
        finally:
            if args.url:
                server.drop_database(DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
