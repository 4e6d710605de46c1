"""`ilji worker`: run projections until SIGTERM/SIGINT.

    ilji worker --projection pkg.module:obj [--projection ...] --database-url URL

`obj` is a `Projection` instance, a `Projection` subclass, or a function returning one (or a
list of them). The command opens the store once (the pooler, LISTEN and standby settings
apply to it) and hands it to the `Worker`. SIGTERM and SIGINT stop the worker cleanly: it
finishes its batches and releases its leases, so other workers take over at once.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
from typing import Annotated

import typer

from ilji.bootstrap import Runtime
from ilji.cli._common import (
    EXIT_INVALID,
    DatabaseUrl,
    DataDir,
    LogFormat,
    LogLevel,
    fail,
    on_store,
    setting_option,
    settings_of,
)
from ilji.domain.errors import ValidationError
from ilji.logs import configure_logging
from ilji.projections import Projection, Worker, store_options
from ilji.settings import Settings


def load_projections(spec: str) -> list[Projection]:
    """Import `module:attribute` and turn it into projections (see the module docstring)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValidationError("projection", f"{spec!r}: use module:attribute")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if (isinstance(target, type) and issubclass(target, Projection)) or (
        callable(target) and not isinstance(target, Projection)
    ):
        target = target()
    if isinstance(target, Projection):
        return [target]
    if isinstance(target, list | tuple) and all(isinstance(p, Projection) for p in target):
        return list(target)
    raise ValidationError("projection", f"{spec!r} is not a Projection, a list of them, or a factory")


def worker_settings(settings: Settings, projections: list[Projection]) -> Settings:
    """`settings` with a pool big enough for `projections` and a short idle-in-transaction
    timeout: the worker runs every partition on the one store the command opens."""
    needs = store_options(projections, lease_ttl=settings.lease_ttl)
    guard_ms = needs["idle_in_transaction_timeout_ms"]
    configured = settings.idle_in_transaction_timeout_ms  # 0: none
    return settings.model_copy(
        update={
            "pool_max_size": max(settings.pool_max_size, needs["max_size"]),
            "idle_in_transaction_timeout_ms": min(configured, guard_ms) if configured else guard_ms,
        }
    )


def worker_command(
    projection: Annotated[
        list[str], typer.Option("--projection", "-p", help="module:attribute of a Projection (repeatable).")
    ],
    worker_id: Annotated[str | None, setting_option("worker_id")] = None,
    lease_ttl: Annotated[float | None, setting_option("lease_ttl")] = None,
    poll_interval: Annotated[float | None, setting_option("poll_interval")] = None,
    listen_url: Annotated[str | None, setting_option("listen_database_url", "--listen-url")] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Run projections until SIGTERM/SIGINT; several workers share them through leases."""
    settings = settings_of(
        database_url,
        data_dir,
        worker_id=worker_id,
        lease_ttl=lease_ttl,
        poll_interval=poll_interval,
        listen_database_url=listen_url,
        log_level=log_level,
        log_format=log_format,
    )
    configure_logging(settings.log_format, settings.log_level)  # a worker logs what it does
    try:
        projections = [p for spec in projection for p in load_projections(spec)]
    except (ImportError, AttributeError, ValidationError) as exc:
        fail(f"cannot load projections: {exc}")
        raise typer.Exit(EXIT_INVALID) from None

    async def body(runtime: Runtime) -> None:
        worker = Worker(
            runtime.store,
            projections,
            worker_id=settings.worker_id,
            lease_ttl=settings.lease_ttl,
            poll_interval=settings.poll_interval,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Replaces `run`'s cancel-on-signal once running: stop() finishes batches and
            # releases leases, and the worker exits 0 (a clean stop, not an interruption).
            loop.add_signal_handler(sig, lambda: loop.create_task(worker.stop()))
        await worker.run()

    on_store(worker_settings(settings, projections), body, schema="embedded")
