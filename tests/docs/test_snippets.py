"""Every code snippet the guide includes runs, and its assertions hold.

The pages include the files under docs/snippets/ with `--8<--`, so what a reader sees is what
this test executes. Each file is loaded, then its `main()` is run, as `python FILE` would:

- `main()` without parameters needs nothing (the in-memory store, or no store at all);
- `main(settings)` runs on PostgreSQL: the test passes settings that point at a fresh database
  of the test session's embedded server (run by hand, the file uses `ILJI_DATABASE_URL`, or
  Ilji's embedded PostgreSQL when it is not set);
- a file without `main` is a module other snippets import (the tutorial's domain, HTTP routes
  and projection): the snippets that import it run its code.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import runpy
from pathlib import Path

import psycopg
import pytest

from ilji.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS_DIR = ROOT / "docs" / "snippets"
SNIPPETS = sorted(SNIPPETS_DIR.glob("*.py"))
#: `--8<-- "path"` or `--8<-- "path:section"` (a part between `# --8<-- [start:section]` markers).
INCLUDE = re.compile(r'--8<--\s+"([^":]+)(?::[\w-]+)?"')


@pytest.mark.parametrize("path", SNIPPETS, ids=[p.name for p in SNIPPETS])
def test_snippet_runs(path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SNIPPETS_DIR))  # the tutorial's files import each other
    namespace = runpy.run_path(str(path), run_name="docs_snippet")
    main = namespace.get("main")
    if main is None:
        return
    database_url: str | None = None
    if "settings" in inspect.signature(main).parameters:
        database_url = request.getfixturevalue("database_url")
        run = main(load_settings(database_url=database_url))
    else:
        run = main()
    if inspect.iscoroutine(run):
        asyncio.run(run)
    if database_url is not None:
        # The snippets share one database, as they would share a reader's: a projection
        # that trips over another snippet's events parks them instead of failing the run.
        with psycopg.connect(database_url) as conn:
            parked = conn.execute("SELECT projection, type, error FROM ilji.parked_events").fetchall()
        assert parked == [], f"{path.name}: projections parked events: {parked}"


def test_there_are_snippets() -> None:
    assert len(SNIPPETS) >= 10


def test_every_snippet_is_included_by_a_page_in_both_languages() -> None:
    for lang in ("en", "ko"):
        included = {
            match
            for page in (ROOT / "docs" / lang).rglob("*.md")
            for match in INCLUDE.findall(page.read_text(encoding="utf-8"))
        }
        missing = [p.name for p in SNIPPETS if f"docs/snippets/{p.name}" not in included]
        assert not missing, f"snippets no {lang} page includes: {missing}"


def test_every_include_points_at_an_existing_file() -> None:
    for page in (ROOT / "docs").rglob("*.md"):
        for target in INCLUDE.findall(page.read_text(encoding="utf-8")):
            assert (ROOT / target).is_file(), f"{page.relative_to(ROOT)} includes missing {target}"


def test_every_included_section_is_marked_in_its_file() -> None:
    for page in (ROOT / "docs").rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        for path, section in re.findall(r'--8<--\s+"([^":]+):([\w-]+)"', text):
            source = (ROOT / path).read_text(encoding="utf-8")
            for marker in (f"[start:{section}]", f"[end:{section}]"):
                assert marker in source, f"{page.relative_to(ROOT)}: {path} has no {marker}"
