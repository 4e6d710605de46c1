"""What `pip install` gives: the `ilji` command names a missing extra (the cases themselves are in
test_cli.py), and the uvicorn internals
the server subclasses are still there in the installed version."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest

from ilji.cli import EXTRAS, _missing_extra

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_module_that_no_extra_provides_is_not_hidden() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"ilji\.gone"):
        _missing_extra(ModuleNotFoundError("No module named 'ilji.gone'", name="ilji.gone"), "ilji")


def test_every_extra_the_command_names_exists_and_the_script_is_its_main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(EXTRAS.values()) <= set(project["optional-dependencies"])
    assert project["scripts"] == {"ilji": "ilji.cli:main"}


# `ilji.server.head_limit.GuardedHttpToolsProtocol` subclasses uvicorn's httptools protocol, which is
# not public API; pyproject.toml bounds uvicorn to the versions tested. This test fails loudly,
# naming what changed, when an upgrade moves the pieces the subclass relies on.
OVERRIDDEN = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "send_400_response",
)


def test_the_uvicorn_internals_the_server_subclasses_are_unchanged() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    missing = [name for name in OVERRIDDEN if not callable(getattr(HttpToolsProtocol, name, None))]
    assert missing == [], f"uvicorn's HttpToolsProtocol lost {missing}: review ilji.server.head_limit"
    init = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert init[:5] == ["self", "config", "server_state", "app_state", "_loop"], init
    assert list(inspect.signature(HttpToolsProtocol.on_header).parameters) == ["self", "name", "value"]
    assert list(inspect.signature(HttpToolsProtocol.send_400_response).parameters) == ["self", "msg"]
