"""What `pip install` gives: the `ilji` command names a missing extra, and the uvicorn internals
the server subclasses are still there in the installed version."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import tomllib
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from ilji import _entry

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_without_the_cli_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "typer" else real(name))
    with pytest.raises(SystemExit) as exit_:
        _entry.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "the ilji command needs the cli extra: pip install 'ilji[cli]'\n"


def test_a_subcommand_without_its_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def serve_without_fastapi() -> None:
        raise ModuleNotFoundError("No module named 'fastapi'", name="fastapi")

    real = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> ModuleType | Any:
        return SimpleNamespace(main=serve_without_fastapi) if name == "ilji.cli" else real(name, package)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(SystemExit) as exit_:
        _entry.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "the ilji command needs the server extra: pip install 'ilji[server]'\n"


def test_a_missing_module_that_no_extra_provides_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ModuleNotFoundError("No module named 'ilji.gone'", name="ilji.gone")

    real = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name, package=None: (
            SimpleNamespace(main=broken) if name == "ilji.cli" else real(name, package)
        ),
    )
    with pytest.raises(ModuleNotFoundError, match=r"ilji\.gone"):
        _entry.main()


def test_every_extra_the_entry_point_names_exists() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(_entry.EXTRA_OF.values()) <= set(extras)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"ilji": "ilji._entry:main"}


# `ilji.server.limits.GuardedHttpToolsProtocol` subclasses uvicorn's httptools protocol, which is
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
    assert missing == [], f"uvicorn's HttpToolsProtocol lost {missing}: review ilji.server.limits"
    init = list(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert init[:5] == ["self", "config", "server_state", "app_state", "_loop"], init
    assert list(inspect.signature(HttpToolsProtocol.on_header).parameters) == ["self", "name", "value"]
    assert list(inspect.signature(HttpToolsProtocol.send_400_response).parameters) == ["self", "msg"]
