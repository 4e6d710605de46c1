"""A real `nats-server -js` for the relay's tests, and helpers to read back what it stored.

Each server listens on a free loopback port with its own JetStream store directory, and can
be stopped and started again on the same port and directory (a broker outage that keeps the
stored messages). `nats-server` comes from Debian (scripts/install-system-deps).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class NatsServer:
    """One `nats-server -js` process on 127.0.0.1."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.fail("nats-server is not installed: run scripts/install-system-deps")
        log = (self.store_dir.parent / f"nats-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 15
        while not _accepting(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start (see {log.name})")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (its store directory stays)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_nats(tmp_path: Path) -> NatsServer:
    """A started server whose JetStream store lives under `tmp_path`."""
    store = tmp_path / "jetstream"
    store.mkdir(parents=True, exist_ok=True)
    server = NatsServer(store)
    server.start()
    return server


@dataclass(frozen=True)
class StoredMessage:
    """One message as JetStream stored it."""

    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes


async def stored_messages(url: str, stream: str) -> list[StoredMessage]:
    """Every message of `stream`, in stream order (read one by one: tests hold thousands at most)."""
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        result = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            msg = await js.get_msg(stream, seq)
            result.append(StoredMessage(seq, msg.subject, dict(msg.headers or {}), msg.data or b""))
        return result
    finally:
        await nc.close()


async def add_stream(url: str, name: str, subjects: list[str], **config: Any) -> None:
    """Create (or update) a JetStream stream."""
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=name, subjects=subjects, **config)
        else:
            await js.update_stream(name=name, subjects=subjects, **config)
    finally:
        await nc.close()
