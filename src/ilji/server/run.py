"""`ilji serve`: uvicorn (uvloop, httptools) running the app factory in one or more processes.

Shutdown: on SIGTERM uvicorn stops accepting connections and waits for in-flight requests,
at most `shutdown_timeout` seconds; the app drains first (readiness fails, SSE streams end
cleanly) so that open streams do not keep it waiting until the bound.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import ssl
from dataclasses import dataclass
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from ilji.domain.errors import ConfigurationError, ValidationError
from ilji.logs import configure_logging
from ilji.server.auth import check_bind, parse_tokens
from ilji.server.factory import create_app
from ilji.server.ratelimit import rate_limits
from ilji.settings import Settings

log = logging.getLogger(__name__)


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_tidy_uvicorn_record)


def _tidy_uvicorn_record(record: logging.LogRecord) -> bool:
    # uvicorn adds a `color_message` copy of some messages with terminal escape codes.
    record.__dict__.pop("color_message", None)
    # uvicorn logs its server life ("Started server process", "Application startup complete")
    # under the logger `uvicorn.error`, at INFO: named so, a log search for errors finds them.
    if record.name == "uvicorn.error":
        record.name = "ilji.server.uvicorn"
    return True


def check_port(settings: Settings) -> None:
    """Refuse a host and port `ilji serve` could not listen on, before anything starts.

    Bound and released at once, with the option uvicorn sets (SO_REUSEADDR), so a port held by
    a closing connection does not count as taken; one held by a listening server does.
    """
    if settings.port == 0:
        return  # any free port
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(
            "--host (ILJI_HOST)", f"cannot resolve {settings.host!r}: {exc.strerror}"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigurationError(
                "--port (ILJI_PORT)",
                f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
                "another server may be using it: choose another port with --port",
            ) from None


def preflight(settings: Settings) -> bool:
    """Everything `serve` can check before starting anything; True when HTTPS is configured.

    The port, the bind address against the tokens, the rate limits and the TLS files: each
    wrong one is one `ConfigurationError` or `ValidationError` line (exit status 2).
    """
    check_bind(settings.host, parse_tokens(settings.api_tokens))
    rate_limits(settings)  # a malformed rate is refused before anything starts
    tls = check_tls(settings)
    check_port(settings)
    return tls


@dataclass(frozen=True)
class AppFactory:
    """Builds the app in each worker process (uvicorn pickles this into spawned workers)."""

    settings: Settings

    def __call__(self) -> FastAPI:
        """Configure logging for this process and build its app."""
        _configure_logging(self.settings)
        return create_app(self.settings, drain_on_signals=True, tune_gc=True)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def check_tls(settings: Settings) -> bool:
    """True when HTTPS is configured; `ValidationError` unless both files are given and load.

    Loading them here, before uvicorn starts, turns a wrong path, a key that does not match
    the certificate or a password-protected key into one clear message and exit status 2.
    """
    if settings.tls_cert is None and settings.tls_key is None:
        return False
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValidationError(
            "tls_cert", "HTTPS needs both a certificate (--tls-cert) and its key (--tls-key)"
        )
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # An empty password: an encrypted key fails here instead of prompting on the terminal.
        context.load_cert_chain(settings.tls_cert, settings.tls_key, password="")
    except (OSError, ssl.SSLError) as exc:
        raise ValidationError(
            "tls_cert", f"cannot load the certificate {settings.tls_cert} and key {settings.tls_key}: {exc}"
        ) from None
    return True


def serve(settings: Settings) -> None:
    """Run the server until SIGTERM/SIGINT. Raises `ValidationError` for an unsafe bind."""
    tls = preflight(settings)
    _configure_logging(settings)
    config = uvicorn.Config(
        AppFactory(settings),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools, with a size and a time limit on request heads (see ilji.server.head_limit).
        http="ilji.server.head_limit:GuardedHttpToolsProtocol",
        lifespan="on",
        log_config=None,  # keep Ilji's handlers: one format (console or JSON) for every log line
        access_log=False,  # the app logs requests itself, by route template and without queries
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        server_header=False,
        ssl_certfile=settings.tls_cert if tls else None,
        ssl_keyfile=settings.tls_key if tls else None,
    )
    log.info(
        "serving",
        extra={"host": settings.host, "port": settings.port, "workers": settings.workers, "tls": tls},
    )
    if settings.workers > 1:
        # uvicorn.run() insists on an import string for several workers; the supervisor
        # itself only needs a picklable config, which the factory is.
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return
    # uvicorn handles SIGTERM/SIGINT while it runs and re-raises the signal once it has shut
    # down; these handlers make that final signal a normal exit (status 0) after a clean drain.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exc:
        # uvicorn exits with its own code 3 when the app fails to start; here that mostly
        # means the database is unreachable, which every ilji command reports as 5.
        if exc.code == STARTUP_FAILURE:
            raise SystemExit(5) from None
        raise
    if not server.started:
        raise SystemExit(5)  # the app failed to start; uvicorn logged why
