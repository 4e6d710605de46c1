"""The README's Python example runs, as a reader would run it, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from ilji import PostgresEventStore
from tests.docs.code_blocks import python_blocks

ROOT = Path(__file__).resolve().parents[2]


def readme_blocks() -> list[str]:
    return [block.code for block in python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))]


def test_the_readme_has_a_python_example() -> None:
    assert readme_blocks(), "README.md lost its library example (or this test's block finder broke)"


def test_every_python_block_of_the_readme_runs(database_url: str, tmp_path: Path) -> None:
    # As the README says: ILJI_DATABASE_URL names a migrated database (here a fresh one).
    env = {**os.environ, "ILJI_DATABASE_URL": database_url}
    printed: list[str] = []
    for number, code in enumerate(readme_blocks(), 1):
        script = tmp_path / f"readme_{number}.py"
        script.write_text(code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"README block {number} failed:\n{result.stderr}"
        printed += result.stdout.splitlines()
    assert "1 TaskAdded {'title': 'water the plants'}" in printed  # what the library example prints

    async def stored() -> list[tuple[int, str]]:
        async with await PostgresEventStore.open(database_url) as store:
            return [(e.version, e.type) for e in await store.read_stream("todo-1")]

    assert asyncio.run(stored()) == [(1, "TaskAdded")]


def test_the_library_example_runs_on_the_embedded_default_too(tmp_path: Path) -> None:
    # Without ILJI_DATABASE_URL the example starts (or shares) the embedded PostgreSQL, as after
    # the README's `make run`: no database needs to be set up first.
    env = {key: value for key, value in os.environ.items() if key != "ILJI_DATABASE_URL"}
    env["ILJI_DATA_DIR"] = str(tmp_path / "data")
    script = tmp_path / "readme_library.py"
    script.write_text(readme_blocks()[-1], encoding="utf-8")
    for run in (1, 2):  # the second run finds the stream already there: a conflict, not a crash
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        if run == 1:
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines() == ["1 TaskAdded {'title': 'water the plants'}"]
        else:
            assert result.returncode != 0
            assert "WrongExpectedVersion" in result.stderr
