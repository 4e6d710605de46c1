"""The guide's diagrams are current renders of their sources, shown on their pages, offline."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_diagrams", ROOT / "docs" / "diagrams" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_renderer()
SOURCES = render.sources()


def test_there_are_four_diagrams_in_each_language() -> None:
    names = {source.name for source in SOURCES}
    for diagram in ("dataflow", "deployment", "modules", "ordering"):
        assert {f"{diagram}.en.dot", f"{diagram}.ko.dot"} <= names
    svgs = {p.name for p in render.OUT.glob("*.svg")}
    expected = {render.svg_path(source).name for source in SOURCES}
    assert svgs == expected, "an SVG without a source, or the reverse"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_the_svg_was_rendered_from_the_current_source(source: Path) -> None:
    svg = render.svg_path(source).read_text(encoding="utf-8")
    stamp = render.STAMP.search(svg)
    assert stamp, f"{render.svg_path(source).name} has no source stamp: run python docs/diagrams/render.py"
    assert stamp["path"] == source.relative_to(ROOT).as_posix()
    assert stamp["sha"] == render.source_sha(source), (
        f"{source.relative_to(ROOT)} changed since its SVG was rendered: run python docs/diagrams/render.py"
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is missing: scripts/install-system-deps")
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_rendering_again_gives_the_committed_svg(source: Path) -> None:
    committed = render.svg_path(source).read_text(encoding="utf-8")
    installed = subprocess.run(["dot", "-V"], capture_output=True, text=True, check=True).stderr
    version = render.VERSION.search(committed)
    if not version or version["version"] not in installed:
        pytest.skip(
            f"the SVG comes from another Graphviz than {installed.strip()!r}; layouts differ by version"
        )
    fonts = subprocess.run(["fc-list"], capture_output=True, text=True, check=False).stdout
    if "Noto Sans CJK" not in fonts:  # text widths, and so the layout, depend on the font
        pytest.skip("the diagrams were laid out with Noto Sans CJK: scripts/install-system-deps")
    assert render.render(source) == committed


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_the_svg_needs_no_network_and_no_other_file(source: Path) -> None:
    svg = render.svg_path(source).read_text(encoding="utf-8")
    body = svg[svg.index("<svg") :]
    assert "<image" not in body and "@import" not in body and "url(" not in body
    links = re.findall(r'(?:xlink:)?href="([^"]*)"', body)
    assert not links, f"{render.svg_path(source).name} links to {links}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_each_diagram_is_shown_on_a_page_of_its_language(source: Path) -> None:
    lang = source.stem.rsplit(".", 1)[1]
    svg_name = render.svg_path(source).name
    shown = f"assets/diagrams/{svg_name})"
    pages = [p for p in (ROOT / "docs" / lang).rglob("*.md") if shown in p.read_text("utf-8")]
    assert pages, f"no page in docs/{lang} shows {svg_name}"
