"""Run a projection worker as a process: `python -m ilji.projections.worker_main --help`.

    python -m ilji.projections.worker_main --database-url URL --projection pkg.module:obj

`obj` is a `Projection` instance, a `Projection` subclass, or a function returning one (or a
list of them). SIGTERM and SIGINT stop the worker cleanly: it finishes its batches and
releases its leases, so other workers take over at once. `ilji worker` calls `main()`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from ilji.domain.errors import ValidationError
from ilji.logs import configure_logging
from ilji.projections.projection import Projection
from ilji.projections.worker import Worker, store_options
from ilji.store.postgres import PostgresEventStore

log = logging.getLogger("ilji.projections")


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of the worker process."""
    parser = argparse.ArgumentParser(prog="ilji-worker", description="Run Ilji projections.")
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL of the event store")
    parser.add_argument("--projection", action="append", required=True, help="module:attribute (repeatable)")
    parser.add_argument("--worker-id", default=None, help="this worker's name (default host:pid:random)")
    parser.add_argument("--lease-ttl", type=float, default=5.0, help="lease time-to-live in seconds")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls when idle")
    parser.add_argument(
        "--listen-url",
        default=None,
        help="direct PostgreSQL URL for LISTEN (when --database-url is a pooler)",
    )
    parser.add_argument(
        "--pooled",
        action="store_true",
        help="--database-url goes through a transaction pooler (PgBouncer): no session state",
    )
    parser.add_argument(
        "--read-url", default=None, help="a hot standby to read the log from (writes stay on --database-url)"
    )
    parser.add_argument("--log-format", choices=["console", "json"], default="console")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run a worker until SIGTERM or SIGINT."""
    projections = [p for spec in args.projection for p in load_projections(spec)]
    store = await PostgresEventStore.open(
        args.database_url,
        **store_options(projections, lease_ttl=args.lease_ttl),
        listen_conninfo=args.listen_url,
        pooled=args.pooled,
        read_conninfo=args.read_url,
    )
    try:
        worker = Worker(
            store,
            projections,
            worker_id=args.worker_id,
            lease_ttl=args.lease_ttl,
            poll_interval=args.poll_interval,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: loop.create_task(worker.stop()))
        await worker.run()
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    try:
        asyncio.run(serve(args))
    except ValidationError as exc:
        log.error("cannot start the worker", extra={"error": str(exc)})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
