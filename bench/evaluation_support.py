"""Shared pieces of the `evaluation_*.py` scripts behind docs/en/evaluation.md.

Each script starts one throwaway embedded PostgreSQL (or uses `--url`), measures one thing,
prints a table and writes it as Markdown (with the machine it ran on and the command that
reproduces it) plus a PNG chart into docs/assets/evaluation/. The guide includes those files,
so the numbers on the page are the numbers the last run printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from _common import BenchServer, machine_info, markdown_table
from evaluation_ko import write_twin
from ilji.store.migrate import migrate

#: Where the Markdown tables and charts go (the guide includes them from here).
OUT_DIR = Path(__file__).resolve().parent.parent / "docs" / "assets" / "evaluation"


def parser(description: str) -> argparse.ArgumentParser:
    """The options every evaluation script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", help="an existing PostgreSQL admin URL instead of a throwaway embedded server")
    p.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the .md table and .png chart")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    return p


@contextlib.contextmanager
def database(url: str | None, dbname: str) -> Iterator[tuple[BenchServer, str]]:
    """A server and an empty, migrated database on it; the database is dropped afterwards."""
    with BenchServer.open(url) as server:
        conninfo = server.recreate_database(dbname)
        asyncio.run(migrate(conninfo))
        try:
            yield server, conninfo
        finally:
            server.drop_database(dbname)


def server_version(conninfo: str) -> str:
    """`18.1` and the like."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


async def median_seconds(run: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median wall time in seconds of `repeat` awaited runs of `run`."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def report(
    name: str,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Sequence[bool],
    conninfo: str,
    args: argparse.Namespace,
    chart: Callable[[Path], None] | None = None,
    notes: Sequence[str] = (),
) -> None:
    """Print the table; unless --no-write, write `<name>.md` (machine + table), its Korean twin
    `<name>.ko.md` (bench/evaluation_ko.py) and `<name>.png`."""
    table = markdown_table(headers, rows, right)
    info = machine_info()
    machine = [
        f"- Machine: {info['CPU']}, {info['Cores']} cores, {info['Memory']} memory; {info['OS']}",
        f"- PostgreSQL {server_version(conninfo)} (embedded, defaults: fsync and synchronous_commit on)"
        if args.url is None
        else f"- PostgreSQL {server_version(conninfo)} (existing server)",
        f"- Python {info['Python']}; load average before the run: {info['Load average']}",
        f"- Run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python bench/{Path(sys.argv[0]).name}"
        f"{' ' + shlex.join(a for a in sys.argv[1:] if a != '--no-write') if len(sys.argv) > 1 else ''}`",
    ]
    text = "\n".join([*machine, "", table, *([""] if notes else []), *notes]) + "\n"
    print(f"\n{title}\n")
    print(text)
    if args.no_write:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(text, encoding="utf-8")
    write_twin(args.out / f"{name}.md")  # the Korean guide's copy, <name>.ko.md
    if chart is not None:
        chart(args.out / f"{name}.png")
    print(f"wrote {args.out / (name + '.md')}" + (f" and {name}.png" if chart else ""))


def bar_chart(
    path: Path,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    ylabel: str,
    title: str,
    log: bool = False,
) -> None:
    """A grouped bar chart as a PNG (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width=width, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    if log:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
