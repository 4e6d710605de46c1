"""Storage per event: how much disk `ilji.events` takes per event, next to a CRUD row.

For each payload size, a fresh database gets `--events` events spread over streams of
`--per-stream` events, then the script reads `pg_relation_size` (the table's heap),
`pg_indexes_size` and `pg_total_relation_size` of `ilji.events` (after VACUUM) and divides by
the number of events. The CRUD column is what keeping only the current state takes: the same
entities as rows of a plain table with the same payload, one row per stream (VACUUMed).

    python bench/evaluation_storage.py
    python bench/evaluation_storage.py --events 20000 --per-stream 20
"""

from __future__ import annotations

import asyncio
import random
import uuid

import orjson
import psycopg

from evaluation_support import bar_chart, database, parser, report
from ilji import NO_STREAM, NewEvent, PostgresEventStore

WORDS = (
    "seat",
    "hall",
    "stage",
    "row",
    "aisle",
    "speaker",
    "badge",
    "lunch",
    "coffee",
    "talk",
    "room",
    "wifi",
)

#: Payloads of three sizes (bytes of encoded JSON, roughly): an id and a number; a small
#: record; a record with a free-text note.
PAYLOADS = {
    "small": {"reservation_id": "r-0000000000", "quantity": 2},
    "medium": {
        "reservation_id": "r-0000000000",
        "quantity": 2,
        "attendee": {"name": "Kim Minji", "email": "minji@example.com", "company": "Example Co."},
        "seat_class": "standard",
        "price": {"amount": 129000, "currency": "KRW"},
    },
    "large": {
        "reservation_id": "r-0000000000",
        "quantity": 2,
        "note": " ".join(random.Random(7).choice(WORDS) for _ in range(250))[:1500],
    },
}

SIZES_SQL = """
SELECT pg_relation_size('ilji.events'), pg_indexes_size('ilji.events'),
       pg_total_relation_size('ilji.events'), count(*)
FROM ilji.events
"""


async def fill(conninfo: str, payload: dict[str, object], events: int, per_stream: int) -> None:
    async with await PostgresEventStore.open(conninfo, min_size=1, max_size=2, notify=False) as store:
        for _ in range(events // per_stream):
            stream = f"conference-{uuid.uuid4().hex}"
            await store.append(
                stream, [NewEvent("SeatsReserved", payload) for _ in range(per_stream)], NO_STREAM
            )


def crud_bytes(conninfo: str, payload: dict[str, object], rows: int) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE crud_state (id uuid PRIMARY KEY, version int NOT NULL, data jsonb NOT NULL)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO crud_state VALUES (%s, 1, %s)",
                [(uuid.uuid4(), orjson.dumps(payload).decode()) for _ in range(rows)],
            )
        conn.execute("VACUUM ANALYZE crud_state")
        row = conn.execute("SELECT pg_total_relation_size('crud_state')").fetchone()
    assert row is not None
    return int(row[0])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--per-stream", type=int, default=10, help="events per stream (entity)")
    args = p.parse_args()
    rows, totals, cruds = [], [], []
    for label, payload in PAYLOADS.items():
        with database(args.url, f"ilji_eval_storage_{label}") as (_, conninfo):
            asyncio.run(fill(conninfo, payload, args.events, args.per_stream))
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE ilji.events")
                heap, indexes, total, count = conn.execute(SIZES_SQL).fetchone()  # type: ignore[misc]
            entities = args.events // args.per_stream
            crud = crud_bytes(conninfo, payload, entities)
            json_bytes = len(orjson.dumps(payload))
            totals.append(total / count)
            cruds.append(crud / count)
            rows.append(
                [
                    label,
                    f"{json_bytes:,}",
                    f"{count:,}",
                    f"{heap / count:,.0f}",
                    f"{indexes / count:,.0f}",
                    f"{total / count:,.0f}",
                    f"{total / 1024 / 1024:,.1f}",
                    f"{crud / 1024 / 1024:,.2f}",
                ]
            )
            print(rows[-1])
            if label != list(PAYLOADS)[-1]:
                continue
            report(
                "storage",
                "Bytes on disk per event",
                [
                    "payload",
                    "JSON bytes",
                    "events",
                    "heap B/event",
                    "indexes B/event",
                    "total B/event",
                    "ilji.events MiB",
                    f"CRUD table MiB ({entities:,} rows)",
                ],
                rows,
                [False, True, True, True, True, True, True, True],
                conninfo,
                args,
                chart=lambda path: bar_chart(
                    path,
                    list(PAYLOADS),
                    {
                        "event store: bytes per event": totals,
                        "CRUD: bytes per event's worth of state": cruds,
                    },
                    "bytes",
                    f"{args.events:,} events in streams of {args.per_stream}",
                ),
                notes=[
                    f"{args.events:,} events in streams of {args.per_stream}; sizes after VACUUM ANALYZE. "
                    "Rows stay under PostgreSQL's 2 kB TOAST threshold, so no payload is compressed.",
                ],
            )


if __name__ == "__main__":
    main()
