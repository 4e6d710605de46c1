"""The Korean evaluation page shows Korean tables, and they hold the numbers of the English ones."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("evaluation_ko", ROOT / "bench" / "evaluation_ko.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("evaluation_ko", module)
    spec.loader.exec_module(module)
    return module


evaluation_ko = load()
REPORTS = evaluation_ko.reports()


def test_there_are_reports() -> None:
    assert {p.stem for p in REPORTS} >= {"contention", "lag", "replay", "storage", "upcast"}


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.name)
def test_the_korean_twin_is_the_translation_of_the_current_table(report: Path) -> None:
    twin = evaluation_ko.twin_path(report)
    assert twin.is_file(), f"{twin.name} is missing: python bench/evaluation_ko.py"
    assert twin.read_text(encoding="utf-8") == evaluation_ko.korean(report.read_text(encoding="utf-8")), (
        f"{twin.name} is out of date: python bench/evaluation_ko.py"
    )


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.name)
def test_the_twin_keeps_every_number_and_translates_every_header(report: Path) -> None:
    english = report.read_text(encoding="utf-8")
    korean = evaluation_ko.twin_path(report).read_text(encoding="utf-8")
    numbers = re.compile(r"\d+(?:[.,]\d+)*")
    assert Counter(numbers.findall(korean)) == Counter(numbers.findall(english))
    header = next(line for line in korean.splitlines() if line.startswith("|"))
    assert re.search(r"[가-힣]", header), f"{report.name}: the Korean header is not in Korean: {header}"


def test_an_unknown_header_is_refused_not_copied_in_english() -> None:
    with pytest.raises(ValueError, match="no Korean for table cell 'queue depth'"):
        evaluation_ko.korean("| case | queue depth |\n| --- | ---: |\n")
    with pytest.raises(ValueError, match="no Korean for the line"):
        evaluation_ko.korean("A note nobody translated.")


def test_the_korean_page_includes_the_twins_and_the_english_page_the_tables() -> None:
    ko = (ROOT / "docs" / "ko" / "evaluation.md").read_text(encoding="utf-8")
    en = (ROOT / "docs" / "en" / "evaluation.md").read_text(encoding="utf-8")
    for report in REPORTS:
        rel = report.relative_to(ROOT).as_posix()
        if f'"{rel}"' in en:
            assert f'"{evaluation_ko.twin_path(report).relative_to(ROOT).as_posix()}"' in ko
            assert f'"{rel}"' not in ko, f"the Korean page still includes the English {report.name}"


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.name)
def test_the_korean_page_shows_the_korean_chart(report: Path) -> None:
    english_chart = report.with_suffix(".png")
    if not english_chart.is_file():
        return
    korean_chart = evaluation_ko.chart_twin_path(report)
    assert korean_chart.is_file(), f"{korean_chart.name} is missing: python bench/evaluation_ko.py"
    ko = (ROOT / "docs" / "ko" / "evaluation.md").read_text(encoding="utf-8")
    assert f"assets/evaluation/{korean_chart.name})" in ko
    assert f"assets/evaluation/{english_chart.name})" not in ko, f"the Korean page shows {english_chart.name}"


def test_the_korean_charts_are_drawn_from_the_tables_as_they_are(tmp_path: Path) -> None:
    # Redraw one chart into a scratch copy: it must work from the committed table alone.
    report = next(p for p in REPORTS if p.stem == "lag")
    copy = tmp_path / report.name
    copy.write_text(report.read_text(encoding="utf-8"), encoding="utf-8")
    try:
        out = evaluation_ko.write_chart_twin(copy)
    except RuntimeError as missing_font:  # pragma: no cover - depends on the machine
        pytest.skip(str(missing_font))
    assert out is not None and out.stat().st_size > 5_000
