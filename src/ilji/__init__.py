"""Ilji (일지): event sourcing for Python on PostgreSQL.

The public API is what `__all__` lists; everything else may change between versions. Users, and
Ilji's own examples and guide, import from the front doors: `ilji` (this module: events, errors,
stores, settings), `ilji.app` (command handling), `ilji.projections` (projection workers) and
`ilji.testing` (given / when / then and the in-memory twins).

The vocabulary of events (`NewEvent`, `RecordedEvent`, the expected versions `ANY`, `NO_STREAM`,
`EXISTS` or a number, together an `ExpectedVersion`) and the errors are loaded with this module;
the stores, the settings and `connect` on first use, so that `import ilji.domain` loads neither
psycopg nor pydantic. `AUDIT_STREAM` is the stream of administrative actions, each by an `Actor`.
`__version__` is this distribution's version.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ilji.domain.errors import (
    AppendOnlyViolation,
    ConflictError,
    DuplicateEventId,
    IljiError,
    PositionLimitReached,
    SchemaError,
    StoreUnavailable,
    StreamDeleted,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from ilji.domain.events import (
    ANY,
    EXISTS,
    NO_STREAM,
    AppendPart,
    AppendResult,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamState,
)

if TYPE_CHECKING:
    from ilji.bootstrap import connect, open_runtime
    from ilji.settings import Settings, load_settings
    from ilji.store.audit import AUDIT_STREAM, Actor
    from ilji.store.catalog import Catalog
    from ilji.store.memory import MemoryEventStore
    from ilji.store.port import EventStore, MultiStreamStore, SystemStreamStore
    from ilji.store.postgres import PostgresEventStore
    from ilji.store.snapshots import MemorySnapshotStore, PostgresSnapshotStore, Snapshot, SnapshotStore
    from ilji.store.subject_keys import (
        ForgottenSubject,
        KeyStore,
        MemoryKeyStore,
        PostgresKeyStore,
        SubjectForgotten,
    )

__version__ = "0.1.0"

#: Where each name loaded on first use lives (they need psycopg or pydantic).
_LAZY = {
    "connect": "ilji.bootstrap",
    "open_runtime": "ilji.bootstrap",
    "Settings": "ilji.settings",
    "load_settings": "ilji.settings",
    "AUDIT_STREAM": "ilji.store.audit",
    "Actor": "ilji.store.audit",
    "Catalog": "ilji.store.catalog",
    "MemoryEventStore": "ilji.store.memory",
    "EventStore": "ilji.store.port",
    "MultiStreamStore": "ilji.store.port",
    "SystemStreamStore": "ilji.store.port",
    "PostgresEventStore": "ilji.store.postgres",
    "Snapshot": "ilji.store.snapshots",
    "SnapshotStore": "ilji.store.snapshots",
    "MemorySnapshotStore": "ilji.store.snapshots",
    "PostgresSnapshotStore": "ilji.store.snapshots",
    "ForgottenSubject": "ilji.store.subject_keys",
    "KeyStore": "ilji.store.subject_keys",
    "MemoryKeyStore": "ilji.store.subject_keys",
    "PostgresKeyStore": "ilji.store.subject_keys",
    "SubjectForgotten": "ilji.store.subject_keys",
}


def __getattr__(name: str) -> Any:
    """Load a store, the settings or `connect` on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ilji' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The module's names, the lazy ones included."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
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
]
