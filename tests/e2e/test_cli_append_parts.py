"""`ilji append --parts`: several streams in one transaction from a JSON file or stdin."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

ILJI = [sys.executable, "-m", "ilji.cli"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ILJI, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def body(a: str, b: str, expected_b: int | str = "no_stream") -> dict[str, object]:
    return {
        "parts": [
            {"stream": a, "expected_version": "no_stream", "events": [{"type": "Debited", "data": {"n": 5}}]},
            {
                "stream": b,
                "expected_version": expected_b,
                "events": [{"id": str(uuid.uuid4()), "type": "Credited", "data": {"n": 5}}],
            },
        ]
    }


def test_parts_from_a_file_and_from_stdin(database_url: str, tmp_path: Path) -> None:
    db = ["--database-url", database_url]
    a, b = f"acct-{uuid.uuid4().hex[:8]}", f"acct-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(body(a, b)))
    first = run("append", "--parts", str(path), "--json", *db)
    assert first.returncode == 0, first.stderr
    results = json.loads(first.stdout)["parts"]
    assert [(r["stream"], r["last_version"]) for r in results] == [(a, 1), (b, 1)]
    assert results[1]["first_position"] > results[0]["last_position"]

    c, d = f"acct-{uuid.uuid4().hex[:8]}", f"acct-{uuid.uuid4().hex[:8]}"
    piped = run("append", "--parts", "-", *db, stdin=json.dumps(body(c, d)))
    assert piped.returncode == 0, piped.stderr
    assert f"to {d} as versions 1..1" in piped.stdout


def test_a_failing_part_is_named_and_nothing_is_stored(database_url: str) -> None:
    db = ["--database-url", database_url]
    a, b = f"acct-{uuid.uuid4().hex[:8]}", f"acct-{uuid.uuid4().hex[:8]}"
    conflict = run("append", "--parts", "-", *db, stdin=json.dumps(body(a, b, expected_b=3)))
    assert conflict.returncode == 3, conflict.stderr  # EXIT_CONFLICT
    assert "parts[1]" in conflict.stderr and b in conflict.stderr
    assert len(conflict.stderr.strip().splitlines()) == 1
    assert "has no events" in run("read", a, *db).stderr
    bad = body(a, b)
    bad["parts"][0]["events"][0]["type"] = ""  # type: ignore[index]
    invalid = run("append", "--parts", "-", *db, stdin=json.dumps(bad))
    assert invalid.returncode == 2
    assert "parts[0].events[0].type" in invalid.stderr
    assert run("append", "--parts", "-", *db, stdin="{nope").returncode == 2
    assert run("append", "x-1", "--parts", "-", *db, stdin="[]").returncode == 2
    assert "missing" in run("append", "x-1", *db).stderr
