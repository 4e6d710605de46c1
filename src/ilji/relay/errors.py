"""Errors of the relay (all under `IljiError`).

The relay's projection raises them from `apply`, and the projections runner treats them by
kind: `BrokerUnavailable` is a `ConnectionError`, which the runner retries without limit and
never counts against an event; everything else counts as an attempt on the event, so a
message the broker keeps refusing (or a mapping that keeps failing) is parked after
`max_attempts`, like any poison event, and can be replayed.
"""

from __future__ import annotations

from ilji.domain.errors import IljiError


class RelayError(IljiError):
    """Something about the relay went wrong."""

    code = "relay-error"


class MappingError(RelayError):
    """A mapping is declared wrongly, or its function returned something that cannot be published."""

    code = "relay-mapping-error"


class BrokerUnavailable(RelayError, ConnectionError):
    """The broker cannot be reached (or did not acknowledge in time): retried, never parked.

    Deriving from `ConnectionError` (an `OSError`) is what makes the projections runner treat
    it as an infrastructure failure rather than a fault of the event being published.
    """

    code = "broker-unavailable"


class PublishRejected(RelayError):
    """The broker refused this message (too large, no stream for its subject, ...)."""

    code = "publish-rejected"
