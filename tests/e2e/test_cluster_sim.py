"""A short cluster rehearsal (deploy/sim/cluster_sim.py): 2 APIs and 2 workers under faults.

The script is run as a process, exactly as `make cluster-sim` runs it (only shorter), and its
counts are asserted here so that a failure names what went wrong: a lost append, an event
applied twice or skipped, or a replica that did not drain on SIGTERM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import pgbouncer_binary

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "sim" / "cluster_sim.py"


@pytest.mark.timeout(240)
def test_a_short_rehearsal_loses_nothing_applies_once_and_drains(tmp_path: Path) -> None:
    summary = tmp_path / "counts.json"
    args = ["--apis", "2", "--workers", "2", "--clients", "4", "--duration", "15", "--json", str(summary)]
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert summary.exists(), f"no counts (exit {run.returncode}):\n{run.stdout}\n{run.stderr[-4000:]}"
    c = json.loads(summary.read_text())
    context = f"{json.dumps(c, indent=1)}\n{run.stderr[-2000:]}"

    # Every kind of fault happened, and load was really acknowledged during them.
    assert set(c["faults"]) == {"api:SIGKILL", "api:SIGTERM", "worker:SIGKILL", "worker:SIGTERM"}, context
    assert c["events_acknowledged"] > 0, context
    # No acknowledged append lost; retries by id did not store anything twice.
    assert c["lost"] == 0, context
    assert c["log_duplicate_ids"] == 0, context
    # The projection applied every logged event exactly once, in stream order.
    assert c["projection_caught_up"], context
    assert c["projection_applied_twice"] == 0, context
    assert c["projection_skipped"] == 0, context
    assert c["projection_not_in_log"] == 0, context
    assert c["projection_out_of_order"] == 0, context
    assert c["projection_partitions_failed"] == 0 and c["projection_parked"] == 0, context
    # SIGTERM drains: in-flight requests answered 2xx, every API exited 0 within its timeout.
    assert c["api_sigterm"] > 0 and c["api_sigterm_clean"] == c["api_sigterm"], context
    assert c["api_still_serving_while_draining"] == c["api_sigterm"], context
    assert c["in_flight_probes"] > 0 and c["in_flight_at_sigterm"] == c["in_flight_probes"], context
    assert c["in_flight_completed"] == c["in_flight_probes"], context
    assert c["worker_sigterm"] > 0 and c["worker_sigterm_clean"] == c["worker_sigterm"], context
    assert all(code == 0 for code in c["final_exit_codes"].values()), context
    assert c["failed"] == [] and run.returncode == 0, context


@pytest.mark.timeout(300)
def test_a_database_failover_under_load_loses_no_acknowledged_append(tmp_path: Path) -> None:
    """--failover: a primary with a sync standby behind PgBouncer; the primary SIGKILLed halfway."""
    if pgbouncer_binary() is None:
        if os.environ.get("CI"):
            pytest.fail(
                "pgbouncer is not installed: in CI, `make test` installs it (scripts/install-system-deps)"
            )
        pytest.skip("pgbouncer is not installed; run scripts/install-system-deps")
    summary = tmp_path / "counts.json"
    args = ["--apis", "2", "--workers", "2", "--clients", "4", "--duration", "20", "--failover"]
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(summary)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert summary.exists(), f"no counts (exit {run.returncode}):\n{run.stdout}\n{run.stderr[-4000:]}"
    c = json.loads(summary.read_text())
    context = f"{json.dumps(c, indent=1)}\n{run.stderr[-2000:]}"
    assert c["database_failover"], context
    # Every append acknowledged before the primary died is on the promoted standby; none lost.
    assert c["acknowledged_before_failover"] > 0, context
    assert c["acknowledged_found_after_failover"] == c["acknowledged_before_failover"], context
    assert c["lost"] == 0 and c["log_duplicate_ids"] == 0, context
    # The workers reconnected and applied every event once: applications equal events.
    assert c["projection_caught_up"] and c["projection_applied"] == c["log_events"], context
    assert c["projection_applied_twice"] == 0 and c["projection_skipped"] == 0, context
    assert c["failed"] == [] and run.returncode == 0, context
