"""The guide: every page in both languages, in the navigation, with working links, and a strict build.

Pages live in docs/en and docs/ko under the same relative paths (mkdocs-static-i18n, folder
structure). A page someone is still writing may be linked before it exists: PENDING names
those, and nothing else may be missing.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LANGUAGES = ("en", "ko")

#: Pages linked from the guide while someone else is writing them (see mkdocs.yml).
PENDING = {"performance.md"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
REFERENCE = re.compile(r"^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def pages(lang: str) -> set[str]:
    return {p.relative_to(DOCS / lang).as_posix() for p in (DOCS / lang).rglob("*.md")}


def load_config() -> dict[str, object]:
    yaml = pytest.importorskip("yaml")  # PyYAML comes with mkdocs and with uvicorn[standard]

    class Loader(yaml.SafeLoader):  # type: ignore[name-defined,misc]
        """Reads mkdocs.yml, ignoring its `!!python/...` and `!ENV` tags."""

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)  # type: ignore[no-any-return]


def nav_files(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in nav_files(value)]
    return []


def test_every_page_exists_in_both_languages() -> None:
    en, ko = pages("en"), pages("ko")
    assert en - ko == set(), f"pages without a Korean version: {sorted(en - ko)}"
    assert ko - en == set(), f"pages without an English version: {sorted(ko - en)}"


def test_the_navigation_lists_every_page_and_only_existing_ones() -> None:
    config = load_config()
    listed = nav_files(config["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice in nav"
    missing = [f for f in listed if f not in pages("en")]
    assert not missing, f"nav lists pages that do not exist: {missing}"
    not_in_nav = set(str(config.get("not_in_nav") or "").split())
    omitted = pages("en") - set(listed) - not_in_nav
    assert not omitted, f"pages missing from nav in mkdocs.yml: {sorted(omitted)}"
    for pending in PENDING & pages("en"):
        assert pending in not_in_nav or pending in listed


def test_relative_links_point_at_existing_files() -> None:
    broken = []
    for lang in LANGUAGES:
        for page in (DOCS / lang).rglob("*.md"):
            text = FENCE.sub("", page.read_text(encoding="utf-8"))
            targets = LINK.findall(text) + IMAGE.findall(text) + REFERENCE.findall(text)
            for target in targets:
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                path = target.split("#", 1)[0]
                resolved = (page.parent / path).resolve()
                if resolved.exists():
                    continue
                if resolved.name in PENDING and resolved.parent in (DOCS / "en", DOCS / "ko"):
                    continue
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "broken relative links:\n" + "\n".join(broken)


def test_no_absolute_links_or_machine_paths() -> None:
    for page in DOCS.rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        assert "](/" not in text, f"{page.relative_to(ROOT)} has an absolute link; use a relative one"
        for local in ("/work/", "/root/", "/home/runner/"):
            assert local not in text, f"{page.relative_to(ROOT)} mentions a path of one machine: {local}"


DOCS_TOOLS = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocs_static_i18n") is None,
    reason="the docs tools are not installed: pip install -e '.[docs]'",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The guide built as CI builds it: `mkdocs build --strict` into a fresh directory."""
    out = tmp_path_factory.mktemp("site") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@DOCS_TOOLS
def test_mkdocs_build_strict_passes(site: Path) -> None:
    for lang_dir in ("", "ko/"):
        assert (site / lang_dir / "evaluation" / "index.html").is_file()
    assert (site / "assets" / "evaluation" / "contention.png").is_file()


class _Links(HTMLParser):
    """Collects every href and src of a page, and the ids its elements carry."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.urls.append(value)
            elif name in ("id", "name") and value:
                self.ids.add(value)


def parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return parser


def dead_links(site: Path) -> list[str]:
    """Every internal href/src of the built site whose file (or #anchor) does not exist."""
    parsed: dict[Path, _Links] = {}
    dead = []
    for page in sorted(site.rglob("*.html")):
        links = parsed.setdefault(page, parse(page))
        for url in links.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(("mailto:", "data:", "javascript:")):
                continue
            path = unquote(parts.path)
            # The 404 page and the language switch use site-absolute URLs (the site is served at /).
            base = site if path.startswith("/") else page.parent
            target = page if not path else (base / path.lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file() or site.resolve() not in target.resolve().parents:
                dead.append(f"{page.relative_to(site)}: {url}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                ids = parsed.setdefault(target, parse(target)).ids
                if fragment not in ids:
                    dead.append(f"{page.relative_to(site)}: {url} (no id {fragment!r})")
    return dead


@DOCS_TOOLS
def test_the_built_site_has_no_dead_links(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) > 40, "the site lost its pages"
    # The checker itself finds what it should: a link to nowhere, and one to a missing anchor.
    dead = dead_links(site)
    probe = site / "probe-dead-links.html"
    probe.write_text('<a href="nowhere/">x</a><a href="index.html#no-such-heading">y</a>', encoding="utf-8")
    assert len(set(dead_links(site)) - set(dead)) == 2
    probe.unlink()
    assert not dead, f"{len(dead)} dead links in the built site:\n" + "\n".join(dead)
