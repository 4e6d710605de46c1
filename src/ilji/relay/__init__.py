"""The relay: publishes integration events to NATS JetStream, exactly once into the stream.

An application declares its public events as mappings from internal ones
(`IntegrationEvents.map`); `Relay` (or `ilji relay run`) follows the log from a checkpoint and
publishes each mapped event with its event id as `Nats-Msg-Id`, advancing the checkpoint only
after JetStream acknowledged it. It is a projection underneath (`ilji.projections`): leases
and fencing, checkpoints, parking of refused messages and their replay are those of
projections, and `ilji projections parked|replay <relay name>` operate on it too.
Needs the `relay` extra: `pip install 'ilji[relay]'`.
"""

from ilji.relay.errors import BrokerUnavailable, MappingError, PublishRejected, RelayError
from ilji.relay.mapping import IntegrationEvents, Mapping, OutgoingMessage
from ilji.relay.metrics import RelayMetrics
from ilji.relay.relay import Relay, RelayConfig, load_integration

__all__ = [
    "BrokerUnavailable",
    "IntegrationEvents",
    "Mapping",
    "MappingError",
    "OutgoingMessage",
    "PublishRejected",
    "Relay",
    "RelayConfig",
    "RelayError",
    "RelayMetrics",
    "load_integration",
]
