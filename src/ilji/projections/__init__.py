"""Subscriptions, checkpoints and projections (built on the store).

A `Projection` names what it reads and how it applies events; a `Worker` runs projections
with exactly-once effect on PostgreSQL read models (batch and checkpoint in one fenced
transaction), leases for scale-out, partitions, poison-event parking and rebuilds without
downtime. `ilji.projections.admin` operates them from outside (status, pause, replay, waits).
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
from ilji.projections.projection import Connection, Context, PoisonPolicy, Projection, partition_of
from ilji.projections.runner import PartitionMetrics
from ilji.projections.worker import Worker, register

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
    "wait_for_position",
]
