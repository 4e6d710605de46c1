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
- `personal`: personal data encrypted per subject, forgotten by deleting its key;
- `time_travel`: a stream shown as the state after each of its events (the console's view).

Given / when / then for deciders and the in-memory twins are in `ilji.testing`.
"""

from ilji.app.aggregate import AggregateCommand, AggregateRoot, aggregate_decider
from ilji.app.context import Clock, CommandContext, system_clock
from ilji.app.errors import EventFromNewerSchema, EventSchemaError, RegistryError, UnknownEventType
from ilji.app.model import AggregateType, DataclassStateCodec, SnapshotPolicy, StateCodec
from ilji.app.personal import (
    Personal,
    PersonalData,
    PersonalDataError,
    PersonalDataStore,
    erased_fields,
    is_envelope,
)
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
from ilji.app.time_travel import DomainView, DomainViews, StateChange, StateHistory, StateStep
from ilji.domain.decider import CommandRejected, Decider

__all__ = [
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
]
