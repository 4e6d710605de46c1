"""The curl version of the Clients page's program runs against a real server and says what the page says."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from tests.e2e.server_helpers import running_server

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "snippets" / "clients_curl.sh"


def test_the_curl_program(database_url: str) -> None:
    account = f"account-{uuid.uuid4().hex[:8]}"
    with running_server(database_url, env={"ILJI_ACCESS_LOG": "false"}) as server:
        result = subprocess.run(
            ["bash", str(SCRIPT)],
            env={**os.environ, "ILJI": server.url, "ACCOUNT": account},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    print(result.stdout[-2000:], result.stderr[-2000:])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["201", "201", "409", "50"]
    assert "wrong-expected-version" in result.stderr
    # The SSE feed: the account's events with their type and global position as id.
    assert "event: AccountOpened" in result.stdout and "event: Deposited" in result.stdout
    assert any(line.startswith("id: ") for line in lines)
