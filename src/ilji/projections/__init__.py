"""Projections run by workers: read models in PostgreSQL, exactly once, scaled out (built on the store).

A `Projection` names what it reads and how it applies events to PostgreSQL tables; a `Worker`
runs projections on a store its caller opens (`store_options` sizes its pool), with
exactly-once effect on those tables (batch and checkpoint in one fenced transaction), leases
for scale-out, partitions, poison-event parking and rebuilds without downtime.
`ilji.projections.admin` operates them from outside (status, pause, replay, waits).

Which projection to write: this `Projection` for a read model that lives in PostgreSQL and
must survive restarts, be shared by several processes or be rebuilt without downtime. For a
read model held in memory, a process manager, or a test, `ilji.app.InProcessProjection`
(`handle(event)`, fed in this process by an `ilji.app.ProjectionRunner`) is simpler; the two
contracts differ (a worker's handler writes with the `Connection` it is given, psycopg's
asynchronous connection, inside the batch's transaction), so code moves from one to the other
by rewriting its handler, not unchanged.
"""

from ilji.projections.admin import (
    ParkedEvent,
    PartitionStatus,
    ProjectionStatus,
    RebuildProgress,
    WorkerStatus,
    list_parked,
    pause,
    rebuild_progress,
    replay_parked,
    request_rebuild,
    resume,
    status,
    wait_for_position,
)
from ilji.projections.errors import LeaseLost, ProjectionError, ProjectionNotFound, WaitTimeout
from ilji.projections.metrics import PartitionMetrics
from ilji.projections.projection import Connection, Context, PoisonPolicy, Projection, partition_of
from ilji.projections.worker import Worker, register, store_options

__all__ = [
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
]
