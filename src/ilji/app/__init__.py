"""Command handling, repositories, snapshots and upcasting (built on the store).

The pieces, each in its own module:

- `ilji.domain.decider`: `Decider` (decide / evolve / initial_state) and `CommandRejected`;
- `registry`: typed events registered by name and schema version, upcasters, tolerant reading;
- `model`: `AggregateType` (a decider + its category, events and snapshot policy);
- `repository`: `Repository` (load, decide, append, retry), temporal queries, and
  `handle_together` (several commands, one multi-stream append);
- `aggregate`: the aggregate-class style on the same machinery;
- `context`: command metadata (correlation, causation, user, time);
- `processing`: `InProcessProjection` and its runner, `ProjectionRunner` (for read models in
  PostgreSQL run by workers, see `ilji.projections`);
- `testing`: given / when / then for deciders.
"""

from ilji.app.aggregate import AggregateRoot, aggregate_decider
from ilji.app.context import Clock, CommandContext, system_clock
from ilji.app.errors import EventFromNewerSchema, EventSchemaError, RegistryError, UnknownEventType
from ilji.app.model import AggregateType, DataclassStateCodec, SnapshotPolicy, StateCodec
from ilji.app.processing import (
    CheckpointStore,
    InProcessProjection,
    MemoryCheckpointStore,
    ProjectionRunner,
    SilentDuringReplay,
    StreamCheckpointStore,
    is_replaying,
)
from ilji.app.registry import EventRegistry, UnknownEvent
from ilji.app.repository import CommandResult, HistoryEntry, Loaded, Repository, Step, handle_together
from ilji.domain.decider import CommandRejected, Decider

__all__ = [
    "AggregateRoot",
    "AggregateType",
    "CheckpointStore",
    "Clock",
    "CommandContext",
    "CommandRejected",
    "CommandResult",
    "DataclassStateCodec",
    "Decider",
    "EventFromNewerSchema",
    "EventRegistry",
    "EventSchemaError",
    "HistoryEntry",
    "InProcessProjection",
    "Loaded",
    "MemoryCheckpointStore",
    "ProjectionRunner",
    "RegistryError",
    "Repository",
    "SilentDuringReplay",
    "SnapshotPolicy",
    "StateCodec",
    "Step",
    "StreamCheckpointStore",
    "UnknownEvent",
    "UnknownEventType",
    "aggregate_decider",
    "handle_together",
    "is_replaying",
    "system_clock",
]
