"""The small program of the Clients page, with the HTTP client: `ilji serve` in between."""

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx

from ilji import NO_STREAM, NewEvent, Settings, WrongExpectedVersion
from ilji.client import Client


# --8<-- [start:program]
def program(url: str, account: str, token: str | None = None) -> int:
    with Client(url, token=token, timeout=10) as ilji:
        ilji.append(account, [NewEvent("AccountOpened", {"owner": "Mina"})], NO_STREAM)
        ilji.append(account, [NewEvent("Deposited", {"amount": 50})], expected_version=1)
        try:  # decided on version 1, but the stream is at 2 now: refused (409)
            ilji.append(account, [NewEvent("Withdrawn", {"amount": 80})], expected_version=1)
        except WrongExpectedVersion as stale:
            print(stale.code, stale.actual)  # wrong-expected-version 2
        events = list(ilji.iter_stream(account))
        balance = sum(int(e.data["amount"]) for e in events if e.type == "Deposited")
        # Follow the category live over SSE; it reconnects by itself if the server restarts.
        with ilji.subscribe_category("account") as live:
            for event in live:
                if event.id == events[-1].id:
                    break
        return balance


# --8<-- [end:program]


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """`ilji serve` on a free port for the length of the block, as a reader runs it in a terminal."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    database = ["--database-url", settings.database_url] if settings.database_url else []
    command = [sys.executable, "-m", "ilji.cli", "serve", "--port", str(port), *database]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(settings: Settings) -> None:
    with serving(settings) as url:
        assert program(url, f"account-{uuid.uuid4().hex[:8]}") == 50


if __name__ == "__main__":
    main(Settings())
