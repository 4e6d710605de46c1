"""The one seam to NATS: the connection, publishing with acknowledgement, error translation.

`Broker.run()` keeps a connection open: it connects, and when the connection is lost it
connects again after a pause that doubles from `min_backoff` up to `max_backoff` (reset by a
successful connection). nats-py's own reconnect is off on purpose: while reconnecting it
buffers publishes and sends them once connected again, so a message written just before the
connection broke could be lost while a later one of the same stream, still buffered, went
through, and the retried earlier message would then land after it. Without that buffer a
publish on a broken connection fails at once, and the relay retries the batch in order.

Every nats-py exception is translated here, once: `BrokerUnavailable` for anything that says
"the broker is not there" (no connection, no acknowledgement in time, JetStream temporarily
unavailable), `PublishRejected` for a refusal of this message (too large, no stream for its
subject, a stream other than the expected one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from ilji.relay.errors import BrokerUnavailable, PublishRejected, RelayError
from ilji.relay.mapping import OutgoingMessage

log = logging.getLogger(__name__)

# Refusals of the message itself; everything else nats-py raises means the broker is not there.
_REJECTIONS = (
    nats.errors.MaxPayloadError,
    nats.errors.BadSubjectError,
    nats.errors.BadHeaderError,
    nats.js.errors.NoStreamResponseError,
)


def broker_error(exc: BaseException) -> Exception:
    """The relay's error for a nats-py (or socket) exception raised while publishing."""
    if isinstance(exc, BrokerUnavailable | PublishRejected):
        return exc
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return PublishRejected("no JetStream stream takes this subject")
    if isinstance(exc, _REJECTIONS):
        return PublishRejected(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return BrokerUnavailable(f"JetStream unavailable: {exc}")
    if isinstance(exc, nats.js.errors.APIError):
        return PublishRejected(f"JetStream refused the message: {exc.description} (code {exc.err_code})")
    return BrokerUnavailable(f"{type(exc).__name__}: {exc}".rstrip(": "))


class Broker:
    """A NATS connection kept open by `run()`, and JetStream publishing on it."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "ilji-relay",
        ack_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.name = name
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        #: Why the last connection attempt or connection failed (None while connected).
        self.last_error: str | None = "not connected yet"
        #: Successful connections so far (the first one included).
        self.connections = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._connected.is_set()

    async def run(self) -> None:
        """Connect, and connect again (with backoff) whenever the connection is lost, until `stop()`."""
        backoff = self.min_backoff
        while not self._stopping.is_set():
            try:
                await self._connect()
            except Exception as exc:
                self.last_error = str(broker_error(exc))
                log.warning(
                    "cannot connect to NATS, retrying",
                    extra={"error": self.last_error, "retry_in": round(backoff, 2)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.min_backoff
            stop = asyncio.ensure_future(self._stopping.wait())
            lost = asyncio.ensure_future(self._lost.wait())
            try:
                await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                lost.cancel()
            await self._drop()
        await self._drop()

    async def stop(self) -> None:
        """Close the connection and make `run()` return."""
        self._stopping.set()

    async def _connect(self) -> None:
        self._lost.clear()

        async def on_closed() -> None:
            self._connected.clear()
            self._lost.set()

        async def on_error(exc: Exception) -> None:
            self.last_error = str(broker_error(exc))

        nc = await nats.connect(
            self.url,
            name=self.name,
            allow_reconnect=False,  # see the module docstring
            connect_timeout=max(int(self.connect_timeout), 1),
            max_reconnect_attempts=0,
            closed_cb=on_closed,
            disconnected_cb=on_closed,
            error_cb=on_error,
        )
        self._nc, self._js = nc, nc.jetstream(timeout=self.ack_timeout)
        self.connections += 1
        self.last_error = None
        self._connected.set()
        url = nc.connected_url
        # hostname:port only: the URL's user part may hold the credentials.
        where = f"{url.hostname}:{url.port}" if url is not None else None
        log.info("connected to NATS", extra={"server": where})

    async def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        self._connected.clear()
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()
        if nc is not None and not self._stopping.is_set():
            self.last_error = self.last_error or "connection lost"
            log.warning("NATS connection lost", extra={"error": self.last_error})

    async def wait_connected(self, within: float) -> JetStreamContext:
        """The JetStream context once connected; `BrokerUnavailable` if not `within` seconds."""
        if not self._connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), within)
        js = self._js
        if js is None or not self._connected.is_set():
            raise BrokerUnavailable(f"not connected to NATS: {self.last_error or 'connection lost'}")
        return js

    async def publish(self, js: JetStreamContext, message: OutgoingMessage, stream: str) -> bool:
        """Publish and wait for JetStream's acknowledgement; True if JetStream saw a duplicate.

        `stream` is sent as the expected stream: a subject that some other stream captures is
        refused rather than stored where nobody looks for it.
        """
        try:
            ack = await js.publish(
                message.subject,
                message.payload,
                timeout=self.ack_timeout,
                stream=stream,
                headers=dict(message.headers),
            )
        except Exception as exc:
            raise broker_error(exc) from exc
        return bool(ack.duplicate)

    async def ensure_stream(self, name: str, subjects: Sequence[str], duplicate_window: float) -> bool:
        """Create JetStream stream `name` for `subjects` unless it exists; True if created."""
        js = await self.wait_connected(self.connect_timeout)
        try:
            await js.stream_info(name)
            return False
        except nats.js.errors.NotFoundError:
            pass
        except Exception as exc:
            raise broker_error(exc) from exc
        config = StreamConfig(
            name=name,
            subjects=list(subjects),
            storage=StorageType.FILE,
            duplicate_window=duplicate_window,  # seconds (nats-py converts)
        )
        try:
            await js.add_stream(config)
        except Exception as exc:
            error = broker_error(exc)
            if isinstance(error, BrokerUnavailable):
                raise error from exc
            raise RelayError(f"cannot create JetStream stream {name!r}: {exc}") from exc
        log.info("created JetStream stream", extra={"stream": name, "subjects": list(subjects)})
        return True
