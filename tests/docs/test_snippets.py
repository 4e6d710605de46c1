"""Every code snippet the guide includes runs, and its assertions hold.

The pages include the files under docs/snippets/ with `--8<--`, so what a reader sees is what
this test executes (each file runs as `__main__`, which calls `asyncio.run(main())`).
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = sorted((ROOT / "docs" / "snippets").glob("*.py"))
#: `--8<-- "path"` or `--8<-- "path:section"` (a part between `# --8<-- [start:section]` markers).
INCLUDE = re.compile(r'--8<--\s+"([^":]+)(?::[\w-]+)?"')


@pytest.mark.parametrize("path", SNIPPETS, ids=[p.name for p in SNIPPETS])
def test_snippet_runs(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(path), run_name="__main__")


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
