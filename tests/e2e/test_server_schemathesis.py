"""Property-based fuzzing of the running server against its own OpenAPI document (schemathesis).

Every generated request, valid or not, must get an answer that the document describes: no
5xx, a documented status code, content type and headers, and a body that matches the schema.

The `positive_data_acceptance` check is left out: JSON Schema cannot say everything the store
checks inside event data (no NUL characters in nested strings, integers that fit in 64 bits,
unique ids within a batch, the size of an encoded event), so some schema-valid appends get
the documented 400. The schemathesis CLI runs in a subprocess (its pytest plugin does not
support the pytest version used here) with a fixed seed and a bounded number of examples.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server_helpers import Server, running_server

ST = str(Path(sys.executable).parent / "st")


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with running_server(database_url, env={"ILJI_ACCESS_LOG": "false"}) as s:
        yield s


def test_the_server_honours_its_openapi_document(server: Server) -> None:
    result = subprocess.run(
        [
            ST,
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--request-timeout",
            "10",
            # JSON answers only: an event stream (Accept: text/event-stream) never ends by itself.
            "--header",
            "Accept: application/json",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # every documented operation was exercised
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested, result.stdout[-3000:]
    assert tested[1] == selected[1] == selected[2], result.stdout[-3000:]
    assert int(tested[1]) >= 7
