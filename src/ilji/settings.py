"""Ilji's settings: one typed object, read once at start from `ILJI_*` environment variables.

Command-line flags override the environment (the CLI passes them as keyword arguments).
Nothing else in Ilji reads `os.environ`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
import psycopg
import pydantic
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ilji import examples
from ilji.domain.errors import ConfigurationError

ENV_PREFIX = "ILJI_"
#: Flags whose name is not the setting's own (`--example` fills `examples`).
FLAG_NAMES = {"examples": "--example"}
#: Settings whose value never appears in an error message.
_SECRET = {"database_url", "migration_database_url", "api_tokens"}

# A host as it appears in a Host header: a name or IPv4 address, or an IPv6 address in
# brackets, with an optional port.
_HOST_ENTRY = re.compile(r"^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ilji", appauthor=False))


class Settings(BaseSettings):
    """Everything configurable about an Ilji process."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

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
    pool_min_size: int = Field(default=1, ge=0, le=1000, description="connections a pool keeps open")
    pool_max_size: int = Field(default=10, ge=1, le=1000, description="most connections of a pool")
    max_event_size: int = Field(
        default=1024 * 1024,
        ge=64,
        description="largest encoded event (data+metadata+type) in bytes",
    )
    idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)
    group_commit: bool = Field(
        default=True,
        description="write concurrent appends of one process together: one statement and one "
        "commit per group",
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="log lines for people (console) or one JSON object a line (json)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="least severe log level shown: debug, info, warning, error, critical"
    )

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
    allowed_hosts: str | None = Field(
        default=None,
        description="host names a server without tokens answers besides loopback ones, like "
        '"devbox.local,devbox.local:8000" (a name without a port allows every port); unset: '
        "localhost, 127.0.0.1 and [::1] only (a defence against DNS rebinding)",
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
    tls_key: Path | None = Field(default=None, description="PEM private key of the TLS certificate")

    # -- the relay (`ilji relay run`) ----------------------------------------------------
    relay_nats_url: str | None = Field(
        default=None,
        repr=False,  # may hold credentials: nats://user:password@host:4222
        description="NATS URL the relay publishes to (credentials may be part of it)",
    )
    relay_stream: str = Field(default="ILJI", description="JetStream stream of the relay's subjects")
    relay_port: int = Field(
        default=9108, ge=0, le=65535, description="port of the relay's /metrics, /healthz and /readyz"
    )

    # NoDecode: the variable is a plain comma-separated list ("conference,ships"), not JSON.
    examples: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=f"example domains whose HTTP routes `ilji serve` mounts: {examples.choices()}",
    )

    # -- projection workers (`ilji worker`) -------------------------------------------------
    worker_id: str | None = Field(
        default=None, description="this worker's name (default host:pid:random; in Kubernetes, the pod name)"
    )
    lease_ttl: float = Field(default=5.0, ge=0.5, description="projection lease time-to-live, seconds")
    poll_interval: float = Field(
        default=1.0, ge=0.01, description="seconds between a worker's polls when idle"
    )

    @field_validator("examples", mode="before")
    @classmethod
    def _known_examples(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):
            try:  # the JSON list earlier versions asked for, like ["ships"], still works
                value = json.loads(value)
            except ValueError:
                raise ValueError("is neither a comma-separated list nor a JSON list") from None
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        wrong = examples.unknown(value)
        if wrong:
            raise ValueError(f"unknown example(s) {', '.join(wrong)}: choose {examples.choices()}")
        return tuple(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: str | None) -> str | None:
        for entry in (value or "").split(","):
            entry = entry.strip()
            if entry and (not _HOST_ENTRY.match(entry)):
                raise ValueError(
                    f"{entry[:100]!r} is not a host name with an optional port, "
                    'like "devbox.local" or "devbox.local:8000" ([::1]:8000 for IPv6)'
                )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_in_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "database_url", "migration_database_url", "read_database_url", "listen_database_url", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url", "migration_database_url", "read_database_url", "listen_database_url")
    @classmethod
    def _a_postgres_url(cls, value: str | None) -> str | None:
        # Parsed here with libpq's own rules, so a typo is a setting error at start, not an
        # "unexpected database error" at the first query. The value may hold a password: the
        # message never repeats it.
        if value is None:
            return None
        scheme = value.split("://", 1)[0] if "://" in value else None
        if scheme is not None and scheme not in ("postgresql", "postgres"):
            raise ValueError(f"must be a postgresql:// URL, not {scheme}://")
        try:
            psycopg.conninfo.conninfo_to_dict(value)
        except psycopg.ProgrammingError:
            raise ValueError(
                "is not a PostgreSQL URL: expected postgresql://user:password@host:5432/dbname"
            ) from None
        return value


def setting_name(field: str, flags: set[str] | frozenset[str] = frozenset()) -> str:
    """How the user gave a setting: its flag when `field` came from one, else its variable."""
    if field in flags:
        return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))
    return ENV_PREFIX + field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, then apply the flags that were given (None means not given).

    Every setting is checked here, once: a bad value raises `ConfigurationError` with one line
    that names the flag or the `ILJI_*` variable it came from.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except pydantic.ValidationError as exc:
        raise _configuration_error(exc, set(given)) from None


def _configuration_error(exc: pydantic.ValidationError, flags: set[str]) -> ConfigurationError:
    error = exc.errors(include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    name = setting_name(field, flags)
    if field not in _SECRET and error["type"] not in ("value_error",):
        message = f"{message[:1].lower()}{message[1:]} (got {error['input']!r})"
    more = len(exc.errors()) - 1
    return ConfigurationError(name, message + (f" (and {more} more setting(s))" if more else ""))
