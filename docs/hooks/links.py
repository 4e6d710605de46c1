"""MkDocs hook: links that work on GitHub also work on the built site.

The pages link two kinds of targets that are outside the language being built, so MkDocs leaves
them as they are written and they go nowhere on the site:

- the twin page in the other language (`../ko/concepts.md` from an English page), which the
  i18n plugin builds into `ko/concepts/`;
- files of the repository outside `docs/` (`../../src/ilji/examples/conference/domain.py`), and the
  measurement reports under `docs/assets` that are not pages (`../assets/abuse/report.md`).

This hook rewrites the first to the other language's URL and publishes the second under
`source/` in the site (a linked folder gets a small listing page), so every link of the guide
has a target both on GitHub and on the site. tests/docs/test_docs.py checks every href and
src of the built site.
"""

from __future__ import annotations

import html
import posixpath
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LANGUAGES = ("en", "ko")
DEFAULT = "en"
#: Folders of the repository the guide may link to; the site publishes what it links there.
PUBLISHED = ("examples", "src", "tests", "bench", "deploy", "scripts")
SOURCE_DIR = "source"

HREF = re.compile(r'(?P<attr>\b(?:href|src))="(?P<url>[^"#?]+)(?P<rest>[#?][^"]*)?"')

#: Repository files and folders linked by pages of this build, copied after the build.
_linked: set[str] = set()


def _page_url(lang: str, rel: str) -> str:
    """The site URL of docs/<lang>/<rel>.md (with use_directory_urls)."""
    stem = rel[: -len(".md")]
    if stem == "index":
        path = ""
    elif stem.endswith("/index"):
        path = stem[: -len("index")]
    else:
        path = stem + "/"
    return path if lang == DEFAULT else f"{lang}/{path}"


def _rewrite(url: str, source: str, page_url: str) -> str | None:
    """The site URL for a link written in docs/<source>, or None to leave it alone."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", url) or url.startswith("/"):
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname("docs/" + source), unquote(url)))
    parts = target.split("/")
    if parts[0] == "docs" and len(parts) > 2 and parts[1] in LANGUAGES and target.endswith(".md"):
        site_path = _page_url(parts[1], "/".join(parts[2:]))
    elif (parts[0] in PUBLISHED or (target.startswith("docs/assets/") and target.endswith(".md"))) and (
        ROOT / target
    ).exists():
        # docs/assets/*.md are the measurement scripts' reports: inputs of pages, not pages.
        _linked.add(target)
        site_path = f"{SOURCE_DIR}/{target}" + ("/" if (ROOT / target).is_dir() else "")
    else:
        return None
    base = posixpath.dirname(page_url.rstrip("/") + "/x") if page_url else "."
    relative = posixpath.relpath(site_path or ".", base or ".")
    if site_path.endswith("/") and not relative.endswith("/"):
        relative += "/"
    return relative


MD_LINK = re.compile(r"(?P<head>\]\()(?P<url>[^)\s#]+\.md)(?P<rest>#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Point links to the reports under docs/assets (excluded from the build) at their copies.

    MkDocs would turn `../assets/abuse/report.md` into a page URL that does not exist, so these
    are rewritten before it sees them; the rest is done on the HTML.
    """
    source = page.file.src_uri

    def replace(match: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join(posixpath.dirname("docs/" + source), match["url"]))
        if not target.startswith("docs/assets/"):
            return match.group(0)
        new = _rewrite(match["url"], source, page.url)
        return match.group(0) if new is None else f"{match['head']}{new}{match['rest'] or ''})"

    return MD_LINK.sub(replace, markdown)


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite the links MkDocs could not resolve inside one language."""
    source = page.file.src_uri  # en/concepts.md, ko/pattern/fowler.md
    if source.split("/", 1)[0] not in LANGUAGES:
        return html_text

    def replace(match: re.Match[str]) -> str:
        new = _rewrite(html.unescape(match["url"]), source, page.url)
        if new is None:
            return match.group(0)
        return f'{match["attr"]}="{html.escape(new)}{match["rest"] or ""}"'

    return HREF.sub(replace, html_text)


def on_post_build(config: Any) -> None:
    """Publish the repository files the pages link to, with a listing page for a folder."""
    site = Path(config["site_dir"])
    for target in sorted(_linked):
        path = ROOT / target
        out = site / SOURCE_DIR / target
        if path.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            names = sorted(
                p.name + ("/" if p.is_dir() else "")
                for p in path.iterdir()
                if not p.name.startswith(".") and p.name != "__pycache__"
            )
            for name in names:
                if not name.endswith("/"):
                    shutil.copyfile(path / name, out / name)
            files_here = [n for n in names if not n.endswith("/")]
            items = "\n".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in files_here)
            (out / "index.html").write_text(
                f'<!doctype html><meta charset="utf-8"><title>{html.escape(target)}</title>'
                f"<h1>{html.escape(target)}/</h1><ul>\n{items}\n</ul>\n",
                encoding="utf-8",
            )
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
