"""`ilji append`, `read`, `tail` and `info`: write to the log, read it, and see what it holds."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from ilji.bootstrap import Runtime
from ilji.cli._common import (
    DatabaseUrl,
    DataDir,
    JsonOutput,
    invalid,
    on_store,
    out,
    print_json,
    settings_of,
)
from ilji.cli._output import events_table
from ilji.domain.errors import IljiError, ValidationError
from ilji.domain.events import TRANSACTION_IDS_WARNING, NewEvent, RecordedEvent, new_event_id
from ilji.domain.shapes import event_json, to_json
from ilji.domain.validation import validate_expected_version
from ilji.settings import Settings
from ilji.store.migrate import check_schema, latest_version
from ilji.store.port import Direction

#: Most events one page of `ilji read` / `ilji tail` asks for: the HTTP contract's bound.
PAGE_LIMIT = 1000


def _parse_json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(option, f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError(option, "must be a JSON object, like '{\"seats\": 2}'")
    return value


def _parse_expected(text: str) -> int | Any:
    value: object = int(text) if text.lstrip("-").isdigit() else text
    return validate_expected_version(value)


def append_command(
    stream: Annotated[str | None, typer.Argument(help="Stream name, like order-42.")] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", "-t", help="Event type, like OrderPlaced.")
    ] = None,
    data: Annotated[str, typer.Option("--data", "-d", help="Event data as a JSON object.")] = "{}",
    metadata: Annotated[str, typer.Option("--metadata", "-m", help="Metadata JSON object.")] = "{}",
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id (UUID) to make retries idempotent.")
    ] = None,
    expected_version: Annotated[
        str, typer.Option("--expected-version", "-e", help="A version, any, no_stream or exists.")
    ] = "any",
    parts_file: Annotated[
        str | None,
        typer.Option(
            "--parts",
            help="Several streams at once, all or nothing: a JSON file (- for stdin) shaped like "
            'POST /v1/append\'s body, {"parts": [{"stream", "expected_version", "events"}]}.',
        ),
    ] = None,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Append one event to a stream, or several streams' events in one transaction (--parts)."""
    settings = settings_of(database_url, data_dir)
    if parts_file is not None:
        if stream is not None or event_type is not None:
            raise invalid(ValidationError("--parts", "give either --parts or STREAM --type, not both"))
        _append_parts(settings, parts_file, json_output)
        return
    try:
        if stream is None:
            raise ValidationError("stream", "missing: give STREAM --type TYPE, or --parts FILE")
        if event_type is None:
            raise ValidationError("--type", "missing: the event type, like OrderPlaced")
        expected = _parse_expected(expected_version)
        body = _parse_json_object(data, "--data")
        meta = _parse_json_object(metadata, "--metadata")
        try:
            eid = uuid.UUID(event_id) if event_id else new_event_id()
        except ValueError:
            raise ValidationError("--id", f"{event_id!r} is not a UUID") from None
    except IljiError as exc:
        raise invalid(exc) from None
    event = NewEvent(type=event_type, data=body, metadata=meta, id=eid)

    async def body_(runtime: Runtime) -> None:
        result = await runtime.store.append(stream, [event], expected)
        if json_output:
            print_json(to_json(result))
        else:
            again = " (already stored: idempotent retry)" if result.idempotent else ""
            out.print(
                f"appended {event_type} to {stream} as version {result.last_version} "
                f"at position {result.last_position}{again}",
                highlight=False,
            )

    on_store(settings, body_)


def _read_parts(source: str) -> list[tuple[Any, list[NewEvent], Any]]:
    """The parts of `ilji append --parts`: from a file, or stdin for `-`."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError("--parts", f"cannot read {source}: {exc.strerror}") from None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("--parts", f"is not valid JSON: {exc}") from None
    raw_parts = document.get("parts") if isinstance(document, dict) else document
    if not isinstance(raw_parts, list):
        raise ValidationError("--parts", 'must hold {"parts": [...]} or a list of parts')
    parts = []
    for k, raw in enumerate(raw_parts):
        where = f"parts[{k}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
            raise ValidationError(where, 'must be an object with "stream" and a list of "events"')
        events = []
        for i, item in enumerate(raw["events"]):
            if not isinstance(item, dict):
                raise ValidationError(f"{where}.events[{i}]", "must be an object with a type")
            try:
                eid = uuid.UUID(str(item["id"])) if item.get("id") is not None else new_event_id()
            except ValueError:
                raise ValidationError(f"{where}.events[{i}].id", "is not a UUID") from None
            events.append(
                NewEvent(
                    type=item.get("type", ""),  # checked by the store, which names the part
                    data=item.get("data", {}),
                    metadata=item.get("metadata", {}),
                    id=eid,
                )
            )
        expected = raw.get("expected_version", "any")
        parts.append((raw.get("stream"), events, expected))  # checked by the store
    return parts


def _append_parts(settings: Settings, source: str, json_output: bool) -> None:
    try:
        parts = _read_parts(source)
    except IljiError as exc:
        raise invalid(exc) from None

    async def body_(runtime: Runtime) -> None:
        results = await runtime.store.append_streams(parts)
        if json_output:
            print_json({"parts": to_json(results)})
            return
        for result in results:
            again = " (already stored: idempotent retry)" if result.idempotent else ""
            out.print(
                f"appended {result.last_version - result.first_version + 1} event(s) to {result.stream} "
                f"as versions {result.first_version}..{result.last_version} at positions "
                f"{result.first_position}..{result.last_position}{again}",
                highlight=False,
            )

    on_store(settings, body_)


async def _read_pages(
    read: Callable[[int | None, int], Awaitable[list[RecordedEvent]]], limit: int | None, step: int
) -> list[RecordedEvent]:
    """Up to `limit` events (all when None), asked for in pages of at most PAGE_LIMIT.

    `read(cursor, n)` reads n events from `cursor` (None: the start); each next cursor is the
    last event's version or position plus `step` (stream versions) or itself (positions).
    """
    events: list[RecordedEvent] = []
    cursor: int | None = None
    while limit is None or len(events) < limit:
        want = PAGE_LIMIT if limit is None else min(PAGE_LIMIT, limit - len(events))
        page = await read(cursor, want)
        events.extend(page)
        if len(page) < want:
            break
        last = page[-1]
        cursor = last.version + step if step else last.position
    return events


ReadLimit = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=1,
        help=f"At most this many events (read {PAGE_LIMIT} at a time); default: the whole stream.",
        show_default=False,
    ),
]


def read_command(
    stream: Annotated[str, typer.Argument(help="Stream name.")],
    from_version: Annotated[int | None, typer.Option("--from-version", min=0)] = None,
    limit: ReadLimit = None,
    backward: Annotated[bool, typer.Option("--backward", help="Newest first.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print a stream's events: all of them, or --limit of them from --from-version."""

    async def body(runtime: Runtime) -> None:
        direction: Direction = "backward" if backward else "forward"

        reader = runtime.store.reader  # a hot standby when ILJI_READ_DATABASE_URL is set

        async def page(cursor: int | None, n: int) -> list[RecordedEvent]:
            start = from_version if cursor is None else cursor
            return await reader.read_stream(stream, start, n, direction)

        events = await _read_pages(page, limit, -1 if backward else 1)
        if not events:
            (await reader.stream_lifecycle(stream)).check_readable()
        if json_output:
            print_json({"stream": stream, "events": [event_json(e) for e in events]})
        else:
            out.print(events_table(f"stream {stream}", events))

    on_store(settings_of(database_url, data_dir), body, schema="read")


def tail_command(
    category: Annotated[str | None, typer.Option("--category", "-c", help="Only this category.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this position.")] = 0,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help=f"At most this many events (read {PAGE_LIMIT} at a time).")
    ] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print the global log (or one category), --limit events after --after; --follow: live."""

    async def body(runtime: Runtime) -> None:
        store = runtime.store.reader  # a hot standby when ILJI_READ_DATABASE_URL is set
        if follow:
            async for event in store.follow(after, category=category):
                if json_output:
                    print_json(event_json(event))
                else:
                    out.print(
                        f"{event.position:>16}  {event.stream}@{event.version}  {event.type}  "
                        f"{orjson.dumps(event.data).decode()}",
                        highlight=False,
                    )
            return

        async def page(cursor: int | None, n: int) -> list[RecordedEvent]:
            start = after if cursor is None else cursor
            if category:
                return await store.read_category(category, start, n)
            return await store.read_all(start, n)

        events = await _read_pages(page, limit, 0)
        nxt = events[-1].position if events else after
        if json_output:
            print_json({"events": [event_json(e) for e in events], "next": nxt})
        else:
            out.print(events_table(f"{'category ' + category if category else '$all'}", events))
            out.print(f"next: --after {nxt}", highlight=False)

    # Following runs until stopped: a signal is its normal end, not an interruption.
    stopped = None if follow else "stopped; nothing was changed"
    on_store(settings_of(database_url, data_dir), body, schema="read", interrupted=stopped)


def _info_warnings(prepared: int, ids_left: int) -> list[str]:
    """What `ilji info` tells an operator to act on."""
    warnings = []
    if prepared:
        warnings.append(
            f"{prepared} prepared (two-phase) transaction(s) wait for COMMIT PREPARED or ROLLBACK "
            "PREPARED; they hold back the global log (see pg_prepared_xacts)"
        )
    if ids_left < TRANSACTION_IDS_WARNING:
        warnings.append(
            f"only {ids_left} transaction ids left before appends stop at 2^41 "
            "(see 'Transaction ids' in docs/en/operations.md)"
        )
    return warnings


def info_command(
    json_output: JsonOutput = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Show where the store is and what it holds."""

    async def body(runtime: Runtime) -> None:
        info = await runtime.store.info()
        oldest = await runtime.store.oldest_transaction_age()
        ids_left = await runtime.store.transaction_ids_left()
        data = {
            "database": info.database,
            "server_version": info.server_version,
            "embedded_data_dir": str(runtime.embedded.data_dir) if runtime.embedded else None,
            # The database's own version; the code's is beside it, so a mismatch shows.
            "schema_version": await check_schema(runtime.url, writes=False),
            "code_schema_version": latest_version(),
            "streams": info.streams,
            "events": info.events,
            "last_position": info.last_position,
            "oldest_open_transaction_seconds": round(oldest, 3),
            "prepared_transactions": info.prepared_transactions,
            "transaction_ids_left": ids_left,
            "group_commit": "on" if runtime.store.group_commit else "off",
        }
        warnings = _info_warnings(info.prepared_transactions, ids_left)
        if json_output:
            print_json({**data, "warnings": warnings})
            return
        table = Table(show_header=False, title="Ilji", title_justify="left")
        for key, value in data.items():
            table.add_row(key.replace("_", " "), "-" if value is None else str(value))
        out.print(table)
        for warning in warnings:
            out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)

    on_store(
        settings_of(database_url, data_dir), body, schema="read", interrupted="stopped; nothing was changed"
    )
