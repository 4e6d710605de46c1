"""The mapping the relay's end-to-end tests run in `ilji relay run` processes.

Three internal types: `Tick` becomes public `Ticked.v1`; `Tack` becomes `Tacked.v1` except
when its function decides to publish nothing (every seventh); `Tock` is never mapped.
"""

from __future__ import annotations

from typing import Any

from ilji import RecordedEvent
from ilji.relay import IntegrationEvents

integration = IntegrationEvents("relay_e2e", subject_prefix="e2e", partitions=2, batch_size=100)


@integration.map("Tick", to="Ticked", version=1)
def ticked(event: RecordedEvent) -> dict[str, Any]:
    return {"n": event.data["i"]}


@integration.map("Tack", to="Tacked", version=1)
def tacked(event: RecordedEvent) -> dict[str, Any] | None:
    if event.data["i"] % 7 == 0:
        return None
    return {"n": event.data["i"], "stream": event.stream}
