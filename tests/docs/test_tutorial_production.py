"""The tutorial's production step runs as written: uvicorn, an `ilji worker`, and the curl calls.

The commands are read from the page (docs/en/tutorial.md, step 10) and run as shown, with two
substitutions a reader makes too: the database URL (a fresh database here) and the port (a free
one, so the test does not collide with anything on 8002). The Korean page must show the same
commands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLACEHOLDER_URL = "postgresql://user:password@host:5432/library"


def step_blocks(page: Path, heading: str) -> list[str]:
    text = page.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    section = section[: section.index("\n## ", 1)]
    return SH_BLOCK.findall(section)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def without_comment(line: str) -> str:
    return re.sub(r"\s+#.*$", "", line).strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_korean_page_shows_the_same_commands() -> None:
    en = step_blocks(ROOT / "docs" / "en" / "tutorial.md", "## 10. In production")
    ko = step_blocks(ROOT / "docs" / "ko" / "tutorial.md", "## 10. 운영 환경에서는")
    assert [[without_comment(line) for line in b.splitlines()] for b in en] == [
        [without_comment(line) for line in b.splitlines()] for b in ko
    ]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the step's last commands use curl")
def test_the_production_step_runs_as_written(
    database_url: str, processes: list[subprocess.Popen[str]]
) -> None:
    page = ROOT / "docs" / "en" / "tutorial.md"
    server_block, worker_block, curl_block = step_blocks(page, "## 10. In production")
    assert PLACEHOLDER_URL in server_block and "--port 8002" in server_block
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILJI_")}

    def start(script: str, cwd: Path, extra: dict[str, str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            ["bash", "-ec", script],
            cwd=cwd,
            env={**env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: the fixture stops bash and its child
        )
        processes.append(process)
        return process

    # Terminal 1, from the repository root: cd, export, migrate, uvicorn (in the foreground).
    server = start(server_block.replace(PLACEHOLDER_URL, database_url).replace("8002", str(port)), ROOT, {})
    # Terminal 2: same directory, same ILJI_DATABASE_URL.
    worker = start(worker_block, ROOT / "docs" / "snippets", {"ILJI_DATABASE_URL": database_url})

    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, f"the server stopped:\n{server.stdout.read() if server.stdout else ''}"
        assert worker.poll() is None, f"the worker stopped:\n{worker.stdout.read() if worker.stdout else ''}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "uvicorn did not start listening within 60 s"
        time.sleep(0.2)

    # Terminal 3: the curl calls, one by one, POSITION taken from the reply before it.
    replies: list[str] = []
    for line in curl_block.splitlines():
        command = without_comment(line).replace("8002", str(port))
        if "POSITION" in command:
            command = command.replace("POSITION", str(json.loads(replies[-1])["position"]))
        result = subprocess.run(
            ["bash", "-ec", command], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
        replies.append(result.stdout)
    assert json.loads(replies[0])["version"] == 1
    assert json.loads(replies[1])["version"] == 2
    # The read model's row: the worker wrote it.
    assert json.loads(replies[2]) == {"title": "Dune", "borrower": "jiwoo", "times_lent": 1}

    # Both stop cleanly on SIGTERM, as the page says.
    for process in (worker, server):
        os.killpg(process.pid, signal.SIGTERM)
    for process in (worker, server):
        output, _ = process.communicate(timeout=30)
        assert "Traceback" not in output, output
