"""Ilji (일지): event sourcing for Python on PostgreSQL.

The public API is what `__all__` lists; everything else may change between versions.
"""

from ilji.bootstrap import connect
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
from ilji.store.memory import MemoryEventStore
from ilji.store.port import EventStore, MultiStreamStore
from ilji.store.postgres import PostgresEventStore

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "EXISTS",
    "NO_STREAM",
    "AppendOnlyViolation",
    "AppendPart",
    "AppendResult",
    "ConflictError",
    "DuplicateEventId",
    "EventStore",
    "ExpectedVersion",
    "IljiError",
    "MemoryEventStore",
    "MultiStreamStore",
    "NewEvent",
    "PositionLimitReached",
    "PostgresEventStore",
    "RecordedEvent",
    "SchemaError",
    "StoreUnavailable",
    "StreamDeleted",
    "StreamNotFound",
    "StreamState",
    "ValidationError",
    "WrongExpectedVersion",
    "__version__",
    "connect",
]
