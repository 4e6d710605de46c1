"""A Node.js service typed from /openapi.json appends to a real `ilji serve` and follows its log.

examples/node: its types are generated from this server's document by openapi-typescript,
it is compiled by `tsc --strict` and run with node; it appends with expected versions through
openapi-fetch, follows the global log over SSE, and checks it saw each event once, in order.
The packages come from the example's lockfile (scripts/install-node-example).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ilji.client import Client
from tests.e2e.server_helpers import TOKEN_SPEC, TOKENS, Server, running_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node"
BIN = EXAMPLE / "node_modules" / ".bin"
EVENTS = 20


def run(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    started = time.monotonic()
    result = subprocess.run(
        args, cwd=EXAMPLE, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    print(f"{Path(args[0]).name} {' '.join(args[1:3])}: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, (
        f"{args}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    env = {"ILJI_ACCESS_LOG": "false", "ILJI_API_TOKENS": TOKEN_SPEC}
    with running_server(database_url, env=env) as s:
        yield s


def test_the_node_service_appends_and_follows_the_log(server: Server, tmp_path: Path) -> None:
    run(str(ROOT / "scripts" / "install-node-example"))
    with server.client(TOKENS["reader"]) as client:
        (tmp_path / "openapi.json").write_text(json.dumps(client.get("/openapi.json").json()))
    run(
        str(BIN / "openapi-typescript"),
        str(tmp_path / "openapi.json"),
        "--default-non-nullable",
        "false",
        "-o",
        "src/generated/ilji-api.d.ts",
    )
    run(str(BIN / "tsc"), "--strict", "-p", ".")
    env = {
        **os.environ,
        "ILJI_URL": server.url,
        "ILJI_TOKEN": TOKENS["writer"],
        "ILJI_EVENTS": str(EVENTS),
    }
    output = run("node", "dist/service.js", timeout=120, env=env)
    summary = json.loads(output.strip().splitlines()[-1])
    print(
        {key: summary[key] for key in ("stream", "conflict", "actual", "ok")},
        "appended",
        len(summary["appended"]),
    )
    assert summary["ok"] is True
    assert len(summary["appended"]) == EVENTS
    assert summary["seen"] == summary["appended"]
    assert (summary["conflict"], summary["actual"]) == (409, EVENTS)
    with Client(server.url, token=TOKENS["reader"]) as ilji:
        stored = list(ilji.iter_stream(summary["stream"]))
    assert [str(e.id) for e in stored] == summary["appended"]
    assert [e.data for e in stored] == [{"i": i} for i in range(EVENTS)]
