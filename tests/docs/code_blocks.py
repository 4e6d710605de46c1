"""Finding the Python code blocks of a Markdown page (shared by the docs tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A fenced block whose language is Python (```python, ```py, ~~~python3, ```{.python}, indented or not).
PYTHON_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*\{?\.?(?:python3?|py)\b[^\n]*\n"
    r"(?P<body>.*?)"
    r"^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
#: A line that includes a file, or a marked part of it: `--8<-- "docs/snippets/x.py:section"`.
INCLUDE_LINE = re.compile(r'^\s*--8<--\s+"(?P<path>[^":]+)(?::[\w-]+)?"\s*$')


@dataclass(frozen=True)
class Block:
    """One Python block: the line it starts on and its code (indentation of the fence removed)."""

    line: int
    code: str

    def includes(self) -> list[str] | None:
        """The files the block includes, or None when it holds code of its own."""
        lines = [line for line in self.code.splitlines() if line.strip()]
        matches = [INCLUDE_LINE.match(line) for line in lines]
        if not lines or not all(matches):
            return None
        return [m["path"] for m in matches if m]


def python_blocks(text: str) -> list[Block]:
    """Every Python block of a Markdown text, in order."""
    blocks = []
    for match in PYTHON_BLOCK.finditer(text):
        indent = len(match["indent"])
        code = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        blocks.append(Block(text.count("\n", 0, match.start()) + 1, code))
    return blocks
