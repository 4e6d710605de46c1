"""The Korean pages keep to the terms of the Korean glossary's last section.

The table there (`docs/ko/glossary.md`, "이 가이드의 한국어 표기") is the only list: each row names
the words the pages use and, in backticks, the forms they no longer use. This test reads the table
and checks every Korean page against it, so a new row is checked without touching the test.
`pytest -v` lists each checked page as its own test case.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "ko" / "glossary.md"
SECTION = "## 이 가이드의 한국어 표기"


def korean_pages() -> list[Path]:
    """Every Korean page a reader sees: the guide, the tables it includes, the Korean README."""
    pages = sorted((ROOT / "docs" / "ko").rglob("*.md"))
    pages += sorted((ROOT / "docs" / "assets").rglob("*.ko.md"))
    pages.append(ROOT / "README.ko.md")
    return pages


def glossary_rows() -> list[tuple[list[str], list[str]]]:
    """(words to use, forms not to use) for each row of the glossary's term table."""
    text = GLOSSARY.read_text(encoding="utf-8")
    assert SECTION in text, f"{GLOSSARY.relative_to(ROOT)} lost its section {SECTION!r}"
    rows = []
    for line in text.split(SECTION, 1)[1].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or cells[0] in ("쓰는 말", "---"):
            continue
        use = [word.strip() for word in cells[0].split(",")]
        avoid = re.findall(r"`([^`]+)`", cells[1])
        rows.append((use, avoid))
    return rows


def without_term_section(page: Path, text: str) -> str:
    """The glossary names the forms it rules out; only its own term section may."""
    if page == GLOSSARY:
        before, _, after = text.partition(SECTION)
        rest = after.split("\n## ", 1)
        return before + ("\n## " + rest[1] if len(rest) > 1 else "")
    return text


def test_the_glossary_has_a_term_table() -> None:
    rows = glossary_rows()
    assert len(rows) >= 10, f"the term table in {GLOSSARY.relative_to(ROOT)} has {len(rows)} rows"
    assert all(use for use, _ in rows)


def test_the_checked_pages_include_every_korean_page() -> None:
    checked = {page.relative_to(ROOT).as_posix() for page in korean_pages()}
    assert "README.ko.md" in checked
    assert "docs/ko/index.md" in checked and "docs/ko/evaluation.md" in checked
    on_disk = list((ROOT / "docs" / "ko").rglob("*.md"))
    assert len([p for p in checked if p.startswith("docs/ko/")]) == len(on_disk)


@pytest.mark.parametrize("page", korean_pages(), ids=lambda page: page.relative_to(ROOT).as_posix())
def test_a_korean_page_uses_the_glossary_terms(page: Path) -> None:
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    text = without_term_section(page, page.read_text(encoding="utf-8"))
    rows = glossary_rows()
    # A word in use may contain a ruled-out form (제값을 하는 ⊃ 값을 하는, 구독자 ⊃ 독자): blank
    # every word in use first, longest first, then look for the ruled-out forms.
    cleaned = text
    for word in sorted({word for use, _ in rows for word in use}, key=len, reverse=True):
        cleaned = cleaned.replace(word, " ")
    found = []
    for use, avoid in rows:
        for form in avoid:
            for number, line in enumerate(cleaned.splitlines(), 1):
                if form in line:
                    found.append(f"line {number}: {form!r} (use {' / '.join(use)})")
    assert not found, f"{page.relative_to(ROOT)} uses forms the glossary rules out:\n" + "\n".join(found)
