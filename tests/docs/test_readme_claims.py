"""What the READMEs promise about the make targets holds, and the Korean README keeps up."""

from __future__ import annotations

import re
from pathlib import Path

from ilji.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FENCED = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def make_recipe(target: str) -> str:
    """The command lines of one Makefile target."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.MULTILINE)
    assert match, f"the Makefile has no target {target!r}"
    return match.group(1)


def test_make_test_may_install_chromium_with_apt_get_and_the_readmes_say_so() -> None:
    test_line = re.search(r"^test:([^\n]*)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert test_line and "system-deps" in test_line.group(1)
    assert "scripts/install-system-deps" in make_recipe("system-deps")
    script = (ROOT / "scripts" / "install-system-deps").read_text(encoding="utf-8")
    assert "apt-get install" in script and "chromium" in script
    for readme in ("README.md", "README.ko.md"):
        text = (ROOT / readme).read_text(encoding="utf-8")
        assert "apt-get" in text and "Chromium" in text, f"{readme}: `make test` may run apt-get"


def test_make_run_and_make_docs_serve_use_different_ports() -> None:
    assert "ilji serve" in make_recipe("run") and "--port" not in make_recipe("run")
    api_port = Settings.model_fields["port"].default
    docs = re.search(r"mkdocs serve --dev-addr [\d.]+:(\d+)", make_recipe("docs-serve"))
    assert docs, "`make docs-serve` does not choose its port, so it takes mkdocs' default 8000"
    assert int(docs.group(1)) != api_port
    for readme in ("README.md", "README.ko.md"):
        assert f"127.0.0.1:{docs.group(1)}" in (ROOT / readme).read_text(encoding="utf-8")


def code_lines(readme: str) -> list[str]:
    """The README's code blocks, line by line, without comments (which the translation changes)."""
    lines = []
    for block in FENCED.findall((ROOT / readme).read_text(encoding="utf-8")):
        for line in block.splitlines():
            code = re.sub(r"\s+#.*$", "", line).rstrip()
            if code and not code.lstrip().startswith("#"):
                lines.append(code)
    return lines


def test_the_korean_readme_runs_the_same_commands_and_code() -> None:
    assert "README.ko.md" in (ROOT / "README.md").read_text(encoding="utf-8"), "README.md does not link to it"
    assert code_lines("README.ko.md") == code_lines("README.md")
