"""The soak run (bench/soak.py), short: about 20 s of mixed traffic against a real server and a
real projection worker, then its consistency checks. The 15-minute run is in the guide
(docs/en/reliability.md); this one keeps the script and its checks working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ilji.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_loses_nothing_and_stays_consistent(pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--minutes",
            "0.3",
            "--writers",
            "4",
            "--readers",
            "2",
            "--followers",
            "2",
            "--database-url",
            pg_server.admin_url(),  # the script creates and drops its own database there
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((tmp_path / "soak-report.json").read_text())
    assert report["failed"] == []
    store = report["store"]
    assert store["events_acknowledged"] > 100
    assert store["events_in_store"] == store["events_acknowledged"]
    assert store["lost"] == store["refused_but_stored"] == store["stored_unacknowledged"] == 0
    statuses = {k for op in report["operations"].values() for k in op["outcomes"]}
    assert not {s for s in statuses if s.startswith("5")}, statuses
    assert report["errors"] == {}
    assert report["operations"]["append"]["outcomes"]["409"] > 0  # conflicts were exercised
    assert all(feed["events"] == store["events_in_store"] for feed in report["feeds"].values())
    projection = report["projection"]
    assert projection["rebuild_cut_over"]
    assert projection["live_not_in_rebuild"] == projection["rebuild_not_in_live"] == 0
    assert (tmp_path / "soak-report.md").exists() and (tmp_path / "soak-report.png").exists()
