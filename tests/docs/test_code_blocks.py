"""No untested Python in the guide: every Python block is an include of a snippet that runs.

A block on a page of docs/en or docs/ko must consist of `--8<--` lines that include files under
docs/snippets/ (test_snippets.py runs each of them). README.md's blocks hold their code inline;
test_readme.py runs every one of them, so they are covered by construction.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.code_blocks import python_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p for lang in ("en", "ko") for p in (ROOT / "docs" / lang).rglob("*.md"))
TESTED = ROOT / "docs" / "snippets"


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT / "docs").as_posix() for p in PAGES])
def test_every_python_block_includes_a_tested_snippet(page: Path) -> None:
    untested = []
    for block in python_blocks(page.read_text(encoding="utf-8")):
        included = block.includes()
        if included is None:
            untested.append(f"line {block.line}: inline code (move it to docs/snippets/ and include it)")
            continue
        for path in included:
            target = (ROOT / path).resolve()
            if target.parent != TESTED or target.suffix != ".py":
                untested.append(f"line {block.line}: includes {path}, which no test runs")
    assert not untested, f"{page.relative_to(ROOT)} has Python blocks no test executes:\n" + "\n".join(
        untested
    )


def test_the_block_finder_sees_every_kind_of_python_fence() -> None:
    text = (
        "```python\nx = 1\n```\n\n"
        "  ~~~py\n  y = 2\n  ~~~\n\n"
        "```{.python title='a'}\nz = 3\n```\n\n"
        '```python\n--8<-- "docs/snippets/tutorial_domain.py:decide"\n```\n\n'
        "```sh\nls\n```\n"
    )
    blocks = python_blocks(text)
    assert [b.code for b in blocks[:3]] == ["x = 1\n", "y = 2\n", "z = 3\n"]
    assert [b.includes() for b in blocks] == [None, None, None, ["docs/snippets/tutorial_domain.py"]]
    assert [b.line for b in blocks] == [1, 5, 9, 13]
