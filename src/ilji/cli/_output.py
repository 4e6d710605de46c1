"""How the `ilji` command shows Ilji's objects: as JSON (`--json`) and as tables.

JSON is the dataclasses' one form (`ilji.domain.shapes.to_json`: the HTTP API's field names,
times as `utc_text`), with the derived totals a reader would otherwise recompute. Tables are
for people; their times are `utc_text` too, so a time reads the same wherever it shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import orjson
from rich.table import Table

from ilji.domain.events import RecordedEvent
from ilji.domain.shapes import utc_text
from ilji.projections import PartitionStatus, ProjectionStatus


def events_table(title: str, events: Iterable[RecordedEvent]) -> Table:
    """Events as a table: position, stream, version, type, time and data."""
    table = Table(title=title, title_justify="left")
    for column in ("position", "stream", "version", "type", "recorded at", "data"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            str(e.position),
            e.stream,
            str(e.version),
            e.type,
            utc_text(e.recorded_at),
            orjson.dumps(e.data).decode(),
        )
    return table


Cell = Callable[[ProjectionStatus, PartitionStatus], str]

#: The columns a partition table may show (`ilji projections status`, `ilji relay status`).
PARTITION_COLUMNS: dict[str, Cell] = {
    "projection": lambda st, p: st.name + ("" if p.active else " (rebuild)"),
    "version": lambda st, p: str(p.version),
    "part": lambda st, p: f"{p.partition}/{p.partitions}",
    "state": lambda st, p: "paused" if st.paused else p.state,
    "checkpoint": lambda st, p: str(p.checkpoint),
    "behind": lambda st, p: f"{p.events_behind:,}{'+' if p.events_behind_capped else ''}",
    "lag s": lambda st, p: f"{p.lag_seconds:.1f}",
    "events/s": lambda st, p: f"{p.events_per_second:,.0f}",
    "owner": lambda st, p: p.owner or "–",
    "parked": lambda st, p: str(p.parked),
    "error": lambda st, p: p.error or "",
}


def partitions_table(
    columns: Sequence[str], rows: Iterable[tuple[ProjectionStatus, PartitionStatus]]
) -> Table:
    """One row per partition, with `columns` (names of `PARTITION_COLUMNS`); failed ones red."""
    table = Table(*columns)
    for st, p in rows:
        table.add_row(
            *(PARTITION_COLUMNS[column](st, p) for column in columns),
            style="red" if p.state == "failed" else None,
        )
    return table
