"""What a partition runner counts, for the application that runs a worker (`Worker.metrics()`).

Only this process's view: the database's view of every partition (checkpoint, owner, lag) is
`ilji.projections.admin.status`, which the server exports as the `ilji_projection_*` metrics.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

# Events per second are measured over this window.
_RATE_WINDOW = 5.0


@dataclass(slots=True)
class PartitionMetrics:
    """Counters of one partition runner in this process (`Worker.metrics()`)."""

    projection: str
    version: int
    partition: int
    owned: bool = False
    fencing_token: int = 0
    position: int = 0
    status: str = "stopped"
    batches: int = 0
    events_applied: int = 0
    events_skipped: int = 0
    leases_acquired: int = 0
    leases_lost: int = 0
    commits_rejected: int = 0
    retries: int = 0
    parked: int = 0
    replayed: int = 0
    failed: int = 0
    infrastructure_errors: int = 0
    events_per_second: float = 0.0


class Rate:
    """Events per second over the last few seconds."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, count: int) -> float:
        """Record `count` events applied now; the rate over the window."""
        now = time.monotonic()
        self._samples.append((now, count))
        while self._samples and self._samples[0][0] < now - _RATE_WINDOW:
            self._samples.popleft()
        span = max(now - self._samples[0][0], 1.0) if len(self._samples) > 1 else _RATE_WINDOW
        return sum(c for _, c in self._samples) / span
