"""Ilji's settings: one typed object, read once at start from `ILJI_*` environment variables.

Command-line flags override the environment (the CLI passes them as keyword arguments).
Nothing else in Ilji reads `os.environ`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ilji", appauthor=False))


class Settings(BaseSettings):
    """Everything configurable about an Ilji process."""

    model_config = SettingsConfigDict(env_prefix="ILJI_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset or empty starts the embedded server"
    )
    migration_database_url: str | None = Field(
        default=None,
        repr=False,  # the schema owner's password may be in it
        description="PostgreSQL URL of the role that owns the schema, for `ilji migrate` and "
        "startup migrations; unset uses the database URL",
    )
    # Beyond one machine (docs/en/scaling.md): a hot standby for reads, a transaction pooler.
    read_database_url: str | None = Field(
        default=None, repr=False, description="hot standby URL for stream/log/SSE reads; unset: the primary"
    )
    listen_database_url: str | None = Field(
        default=None, repr=False, description="direct primary URL for LISTEN when the database URL is pooled"
    )
    database_pooled: bool = Field(default=False, description="the database URL goes through PgBouncer")
    at_least_timeout: float = Field(default=5.0, gt=0, description="seconds a read waits for at_least")
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="where the embedded server keeps its data"
    )
    pool_min_size: int = Field(default=1, ge=0, le=1000)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    max_event_size: int = Field(
        default=1024 * 1024,
        ge=64,
        description="largest encoded event (data+metadata+type) in bytes",
    )
    idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    # -- the HTTP server (`ilji serve`) ---------------------------------------------------
    host: str = Field(default="127.0.0.1", description="address `ilji serve` listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="port `ilji serve` listens on")
    workers: int = Field(default=1, ge=1, le=64, description="server worker processes")
    api_tokens: str | None = Field(
        default=None,
        repr=False,  # secrets stay out of logs and tracebacks
        description='bearer tokens and roles, like "tokA=read,tokB=write,tokC=admin"; '
        "unset serves loopback addresses only",
    )
    body_limit: int = Field(default=1024 * 1024, ge=1024, description="largest request body in bytes")
    body_timeout: float = Field(
        default=30.0, gt=0, description="seconds a request body may take to arrive (408 after)"
    )
    max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, description="largest request line plus headers in bytes (431 above)"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a request line and headers may take to arrive (408 after)"
    )
    max_sse_connections: int = Field(
        default=200, ge=1, description="open SSE streams per server process; more get 503 until one ends"
    )
    db_timeout: float = Field(
        default=5.0, gt=0, description="longest a request waits for a database connection, in seconds"
    )
    sse_heartbeat: float = Field(
        default=15.0, gt=0, description="seconds between heartbeat comments on idle SSE streams"
    )
    sse_queue_size: int = Field(
        default=64, ge=1, description="events buffered per SSE connection before reading pauses"
    )
    shutdown_timeout: float = Field(
        default=10.0, ge=0, description="seconds SIGTERM waits for in-flight requests to finish"
    )
    access_log: bool = Field(default=True, description="log one line per HTTP request")
    monitor_interval: float = Field(
        default=5.0, gt=0, description="seconds between the server's database health checks"
    )

    rate_limit: str | None = Field(
        default=None,
        description='requests per token (per client address without tokens), like "50/s" or '
        '"600/min"; unset: no limit',
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="requests a client may send at once; default: one second's worth"
    )
    rate_limit_roles: str | None = Field(
        default=None, description='per-role rates that replace ILJI_RATE_LIMIT, like "read=200/s,write=20/s"'
    )
    rate_limit_clients: int = Field(
        default=10_000, ge=1, description="clients whose buckets are kept at once (idle ones go first)"
    )
    tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) for HTTPS served directly by `ilji serve`"
    )
    tls_key: Path | None = Field(default=None, description="PEM private key for `tls_cert`")

    examples: tuple[str, ...] = Field(
        default=(), description="example domains whose HTTP routes `ilji serve` mounts"
    )

    @field_validator("examples")
    @classmethod
    def _known_examples(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in ("conference", "ships", "orders")]
        if unknown:
            raise ValueError(f"unknown example(s) {', '.join(unknown)}: choose conference, ships, orders")
        return value

    @field_validator(
        "database_url", "migration_database_url", "read_database_url", "listen_database_url", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, then apply the flags that were given (None means not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)
