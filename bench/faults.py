"""Fault injection, measured: each scenario N times (default 5), a table of counts at the end.

    .venv/bin/python bench/faults.py [--runs 5] [--scale 2] [--only "a."]

Scenarios (see tests/faults/harness.py): a. SIGKILL of the server under load; b. PostgreSQL
stopped with `-m fast` and `-m immediate` and started again, a projection worker running;
c. `pg_terminate_backend` on every server and worker session, repeatedly; d. a transaction
held open while the global log is read. Every run must end with 0 lost, 0 duplicate and
0 partial; the exit status is 1 otherwise. Everything runs on a throwaway embedded
PostgreSQL over loopback and Unix sockets.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

# The harness lives with the tests (pytest runs its short form); make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.harness import Counts, scenarios, throwaway_postgres

COLUMNS = (
    ("scenario", 25),
    ("run", 3),
    ("acked", 6),
    ("found", 6),
    ("lost", 4),
    ("dup", 3),
    ("partial", 7),
    ("doubt", 5),
    ("503", 4),
    ("conn err", 8),
    ("retries", 7),
    ("idem", 4),
    ("ledger", 6),
    ("ok", 3),
)


def row(run: int, c: Counts) -> list[str]:
    """One line of the table."""
    ledger = "-" if c.ledger_applied is None else f"{c.ledger_applied}"
    return [
        c.scenario,
        str(run),
        str(c.acknowledged_events),
        str(c.found_events),
        str(c.lost),
        str(c.duplicates),
        str(c.partials),
        str(c.in_doubt),
        str(c.statuses.get(503, 0)),
        str(c.transport_errors),
        str(c.retries),
        str(c.idempotent),
        ledger,
        "yes" if c.ok else "NO",
    ]


def print_row(cells: list[str]) -> None:
    """Cells padded to the column widths."""
    print(
        "  ".join(
            cell.rjust(width) if i else cell.ljust(width)
            for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
        )
    )


def main() -> int:
    """Run the scenarios, print the table, exit 1 on any lost, duplicate or partial event."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="repetitions per scenario (default 5)")
    parser.add_argument(
        "--scale", type=float, default=2.0, help="stretch load and fault durations (tests: 1)"
    )
    parser.add_argument("--only", default="", help="run only scenarios whose name starts with this")
    args = parser.parse_args()

    results: list[tuple[int, Counts]] = []
    started = time.monotonic()
    with throwaway_postgres() as pg:
        for name, run_scenario in scenarios(args.scale).items():
            if not name.startswith(args.only):
                continue
            for run in range(1, args.runs + 1):
                try:
                    counts = run_scenario(pg)
                except Exception as exc:  # a scenario that cannot finish is a failed run, not a crash
                    counts = Counts(scenario=name, problems=[f"{type(exc).__name__}: {exc}"])
                    traceback.print_exc()
                results.append((run, counts))
                status = "ok" if counts.ok else f"FAILED {counts.problems}"
                print(f"{name} run {run}: {status} {counts.note}", file=sys.stderr, flush=True)

    print()
    print_row([title for title, _ in COLUMNS])
    for run, counts in results:
        print_row(row(run, counts))
    print()
    for run, counts in results:
        if counts.note or counts.problems:
            print(f"{counts.scenario} run {run}: {counts.note} {'; '.join(counts.problems)}".rstrip())
    lost = sum(c.lost for _, c in results)
    dup = sum(c.duplicates for _, c in results)
    partial = sum(c.partials for _, c in results)
    failed = sum(1 for _, c in results if not c.ok)
    print(
        f"\n{len(results)} runs in {time.monotonic() - started:.0f} s: "
        f"{sum(c.acknowledged_events for _, c in results)} acknowledged events, "
        f"{lost} lost, {dup} duplicate, {partial} partial, {failed} failed runs"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
