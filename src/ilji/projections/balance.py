"""Sharing the partitions of a projection between the workers that run it.

Each worker aims at its fair share of a projection version: ceil(partitions / live workers),
the live workers being those whose heartbeat is recent (heartbeat.sql, live_workers.sql). A
worker below its share may take free leases; one above it gives back its highest partition at
the next renewal, one at a time, so that the workers converge without talking to each other.
Nothing here is needed for correctness (the leases and the fence are): balancing only spreads
the load.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping


class Balancer:
    """This worker's fair share of each projection version, and whether it is above or below it."""

    def __init__(self, owned: Callable[[str, int], Collection[int]]) -> None:
        #: The partitions of (projection, version) this worker holds the lease of right now.
        self._owned = owned
        self._partitions: dict[tuple[str, int], int] = {}
        self._live: dict[str, dict[int, int]] = {}

    def set_partitions(self, projection: str, version: int, partitions: int) -> None:
        """The (fixed) partition count of a projection version."""
        self._partitions[(projection, version)] = partitions

    def set_live_workers(self, projection: str, per_version: Mapping[int, int]) -> None:
        """How many workers are alive that run each version of the projection (this one included)."""
        self._live[projection] = dict(per_version)

    def share(self, projection: str, version: int) -> int | None:
        """How many partitions of the version this worker should own (None: count not known yet)."""
        partitions = self._partitions.get((projection, version))
        if partitions is None:
            return None
        live = self._live.get(projection, {}).get(version, 1)
        return math.ceil(partitions / max(live, 1))

    def may_acquire(self, projection: str, version: int) -> bool:
        """Below our share of the version: taking another free partition is welcome."""
        share = self.share(projection, version)
        return share is None or len(self._owned(projection, version)) < share

    def should_release(self, projection: str, version: int, partition: int) -> bool:
        """Above our share, and `partition` is our highest one: give it back (one at a time)."""
        share = self.share(projection, version)
        owned = sorted(self._owned(projection, version))
        return share is not None and len(owned) > share and owned[-1] == partition
