"""Running `ilji serve` as a real process for end-to-end tests, and reading its SSE streams."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ILJI = [sys.executable, "-m", "ilji.cli"]

TOKENS = {"reader": "r-secret-1", "writer": "w-secret-2", "admin": "a-secret-3"}
TOKEN_SPEC = f"{TOKENS['reader']}=read,{TOKENS['writer']}=write,{TOKENS['admin']}=admin"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream_name(prefix: str = "srv") -> str:
    """A random stream name, so tests sharing a database never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def category_name() -> str:
    """A random category name (no '-')."""
    return f"cat{uuid.uuid4().hex[:12]}"


@dataclass
class Server:
    """A running `ilji serve` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)
    #: What the server wrote, kept once its log file is removed (see `running_server`).
    final_log: str | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client for this server (with a bearer token if given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs)

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        if self.final_log is not None:
            return self.final_log
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def start_server(
    database_url: str,
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    port: int | None = None,
) -> Server:
    """Start `ilji serve` on a loopback port (a free one unless given) and wait until /healthz answers."""
    port = port or free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="ilji-serve-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ILJI_")},
        "ILJI_SSE_HEARTBEAT": "0.5",
        "ILJI_SHUTDOWN_TIMEOUT": "5",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [*ILJI, "serve", "--database-url", database_url, "--port", str(port), *(args or [])],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    server = Server(proc, port, Path(log_file.name))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ilji serve exited with {proc.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"ilji serve did not answer within 60 s:\n{server.log()}")


@contextlib.contextmanager
def running_server(database_url: str, **kwargs: Any) -> Iterator[Server]:
    """A server for the duration of the block; it must stop cleanly on SIGTERM."""
    server = start_server(database_url, **kwargs)
    try:
        yield server
    finally:
        code = server.stop()
        log = server.final_log = server.log()
        server.log_path.unlink(missing_ok=True)
        assert code == 0, f"exit code {code}:\n{log}"
        assert "Traceback" not in log, log


def append(
    client: httpx.Client, stream: str, *types: str, expected: int | str | None = None, **extra: Any
) -> httpx.Response:
    """POST events of the given types (data {"i": index}) to a stream."""
    body: dict[str, Any] = {"events": [{"type": t, "data": {"i": i}} for i, t in enumerate(types)], **extra}
    if expected is not None:
        body["expected_version"] = expected
    return client.post(f"/v1/streams/{stream}", json=body)


@dataclass
class SseMessage:
    """One Server-Sent Events message."""

    id: str | None
    event: str | None
    data: str


class SseReader:
    """Parses an SSE response line by line; comments (heartbeats) are counted, not returned."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.comments = 0

    def next(self) -> SseMessage:
        """The next message (blocks until it arrives or the client's read timeout passes)."""
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in self.lines:
            if line == "":
                if data or fields:
                    return SseMessage(fields.get("id"), fields.get("event"), "\n".join(data))
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        raise EOFError("the event stream ended")

    def next_comment(self) -> None:
        """Wait until one more comment (a heartbeat) arrives."""
        seen = self.comments
        for line in self.lines:
            if line.startswith(":"):
                self.comments += 1
            if self.comments > seen:
                return
        raise EOFError("the event stream ended")
