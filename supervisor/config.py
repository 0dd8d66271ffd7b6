"""The process configuration: TOML (`tomllib`) into typed, frozen objects.

Every field has a default, documented beside it; `kafka-pipeline check-config FILE`
prints the effective values with secrets masked. Precedence, lowest first: defaults,
the file, then environment variables `KAFKA_PIPELINE_<SECTION>__<FIELD>` (e.g.
`KAFKA_PIPELINE_KAFKA__BOOTSTRAP_SERVERS`). Secrets (`kafka.sasl_password`,
`auth.client_secret`) come only from environment variables or from files named by
`<field>_file`; `auth.client_secret` also falls back to the usual `AZURE_CLIENT_SECRET`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from supervisor.config_loader import ConfigError, EnvValue, Secret, bind, env_overrides

__all__ = [
    "AuthConfig",
    "BreakerConfig",
    "Config",
    "ConfigError",
    "DeadLetterConfig",
    "DedupConfig",
    "HandlerConfig",
    "HealthConfig",
    "KafkaConfig",
    "LoggingConfig",
    "RetryConfig",
    "Secret",
    "SupervisionConfig",
    "load_config",
    "parse_config",
    "render_config",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
AuthMethod = Literal[
    "none", "cli", "secret", "certificate", "default", "managed_identity", "token_file"
]


def _positive(where: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(where, f"got {value!r}; must be greater than 0")


def _share(where: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ConfigError(where, f"got {value!r}; must be in (0, 1]")


@dataclass(frozen=True)
class KafkaConfig:
    """Where to consume from, and how to connect."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: tuple[str, ...] = ("events",)
    group_id: str = "kafka-pipeline"
    client_id: str = "kafka-pipeline"
    profile: Literal["kafka", "eventhubs"] = "kafka"
    """`eventhubs` applies Event Hubs' documented client settings and OAUTHBEARER."""
    eventhubs_namespace: str = ""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = ""
    sasl_username: str = ""
    sasl_password: Secret | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_records: int = 500
    commit_interval_s: float = 1.0
    stall_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.topics or any(not topic for topic in self.topics):
            raise ConfigError("kafka.topics", f"got {list(self.topics)!r}; needs topic names")
        if not self.bootstrap_servers and self.profile == "kafka":
            raise ConfigError("kafka.bootstrap_servers", "must not be empty")
        if self.profile == "eventhubs" and not self.eventhubs_namespace:
            raise ConfigError(
                "kafka.eventhubs_namespace", "required when kafka.profile = 'eventhubs'"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not self.sasl_username:
                raise ConfigError("kafka.sasl_username", f"required for {self.sasl_mechanism}")
            if self.sasl_password is None:
                raise ConfigError(
                    "kafka.sasl_password",
                    f"required for {self.sasl_mechanism}; set KAFKA_PIPELINE_KAFKA__SASL_PASSWORD"
                    " or kafka.sasl_password_file",
                )
        for name in ("session_timeout_ms", "heartbeat_interval_ms", "max_poll_records"):
            _positive(f"kafka.{name}", getattr(self, name))
        _positive("kafka.commit_interval_s", self.commit_interval_s)
        _positive("kafka.stall_timeout_s", self.stall_timeout_s)
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ConfigError(
                "kafka.heartbeat_interval_ms",
                f"got {self.heartbeat_interval_ms}; must be below kafka.session_timeout_ms "
                f"({self.session_timeout_ms})",
            )


@dataclass(frozen=True)
class AuthConfig:
    """Azure AD credentials for Event Hubs (method `none` for a plain Kafka)."""

    method: AuthMethod = "none"
    tenant_id: str = ""
    client_id: str = ""
    client_secret: Secret | None = None
    certificate_path: Path | None = None
    token_file: Path | None = None
    scope: str = ""
    """Token scope; empty means the Event Hubs scope of kafka.eventhubs_namespace."""
    refresh_margin_s: float = 600.0
    """Refresh this long before expiry (the seed's 50 minutes for 60-minute tokens)."""

    def __post_init__(self) -> None:
        _positive("auth.refresh_margin_s", self.refresh_margin_s)
        needs: dict[str, tuple[str, ...]] = {
            "secret": ("tenant_id", "client_id"),
            "certificate": ("tenant_id", "client_id", "certificate_path"),
            "token_file": ("token_file",),
        }
        for name in needs.get(self.method, ()):
            if not getattr(self, name):
                raise ConfigError(f"auth.{name}", f"required for auth.method = {self.method!r}")
        if self.method == "secret" and self.client_secret is None:
            raise ConfigError(
                "auth.client_secret",
                "required for auth.method = 'secret'; set AZURE_CLIENT_SECRET, "
                "KAFKA_PIPELINE_AUTH__CLIENT_SECRET or auth.client_secret_file",
            )


@dataclass(frozen=True)
class HandlerConfig:
    """What each record is handed to."""

    target: str = "print"
    """`print`, `jsonl:PATH`, `forward:TOPIC`, or your own `package.module:function`."""
    run_in_thread: bool = True
    """Run a synchronous handler in a worker thread so it cannot block the event loop."""
    ordering: str = "partition"
    """Which records may run at once: "key" (a key's records in offset order, keys
    concurrently), "partition" (a partition's in order), "none"."""
    max_in_flight: int = 1
    """Records (or batches) in the handler at once; 1 is one at a time. Raise it only for
    a handler that is safe to call concurrently."""
    max_buffered: int = 0
    """Bound on fetched records not yet finished; 0: max_poll_records with one in flight,
    else max(max_poll_records, 4 * max_in_flight)."""
    batch_max_records: int = 500
    """A batch handler's batch: at most this many records of one partition."""
    batch_max_wait_ms: int = 100
    """A batch handler's batch waits at most this long to fill."""

    def __post_init__(self) -> None:
        if self.ordering not in ("key", "partition", "none"):
            raise ConfigError(
                "handler.ordering", f"got {self.ordering!r}; allowed: 'key', 'partition', 'none'"
            )
        if not 1 <= self.max_in_flight <= 10_000:
            raise ConfigError(
                "handler.max_in_flight", f"got {self.max_in_flight!r}; must be in [1, 10000]"
            )
        if self.max_buffered and not self.max_in_flight <= self.max_buffered <= 1_000_000:
            raise ConfigError(
                "handler.max_buffered",
                f"got {self.max_buffered!r}; 0 (automatic) or in [max_in_flight, 1000000]",
            )
        _positive("handler.batch_max_records", self.batch_max_records)
        if self.batch_max_wait_ms < 0:
            raise ConfigError(
                "handler.batch_max_wait_ms", f"got {self.batch_max_wait_ms!r}; must be >= 0"
            )
        builtin = self.target == "print" or self.target.startswith(("jsonl:", "forward:"))
        module, _, function = self.target.partition(":")
        if not builtin and not (module and function):
            raise ConfigError(
                "handler.target",
                f"got {self.target!r}; allowed: 'print', 'jsonl:PATH', 'forward:TOPIC' "
                "or 'package.module:function'",
            )


@dataclass(frozen=True)
class DeadLetterConfig:
    """Where records that can never succeed go, and when to stop instead."""

    enabled: bool = True
    topic: str = ""
    """Empty means `<first topic>.dlq`."""
    poison_window: int = 100
    poison_max_share: float = 0.5
    """More dead-lettered records than this share of the last `poison_window`: escalate."""

    def __post_init__(self) -> None:
        _positive("dead_letter.poison_window", self.poison_window)
        _share("dead_letter.poison_max_share", self.poison_max_share)


@dataclass(frozen=True)
class DedupConfig:
    """Skip records whose trace id was already handled recently (at-least-once replays)."""

    enabled: bool = True
    header: str = "trace_id"
    json_field: str = ""
    """When set, the trace id is read from this top-level field of a JSON value instead."""
    capacity: int = 100_000

    def __post_init__(self) -> None:
        _positive("dedup.capacity", self.capacity)


@dataclass(frozen=True)
class RetryConfig:
    """In-place retries of a failing handler call before the consumer gives up."""

    max_attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    budget_ratio: float = 0.2
    """Retries may be at most this share of calls over a 10 s window."""

    def __post_init__(self) -> None:
        _positive("retry.max_attempts", self.max_attempts)
        _positive("retry.max_delay_s", self.max_delay_s)
        if self.base_delay_s < 0:
            raise ConfigError("retry.base_delay_s", f"got {self.base_delay_s!r}; must be >= 0")
        _share("retry.budget_ratio", self.budget_ratio)


@dataclass(frozen=True)
class BreakerConfig:
    """The circuit breaker around the handler."""

    failure_threshold: int = 5
    recovery_timeout_s: float = 30.0
    half_open_max_calls: int = 1
    success_threshold: int = 1

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_max_calls", "success_threshold"):
            _positive(f"breaker.{name}", getattr(self, name))
        _positive("breaker.recovery_timeout_s", self.recovery_timeout_s)


@dataclass(frozen=True)
class SupervisionConfig:
    """Restart intensity, backoff and the graceful-stop deadline."""

    max_restarts: int = 5
    period_s: float = 60.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    stable_after_s: float = 60.0
    graceful_stop_s: float = 25.0
    """First SIGTERM: finish in-flight records, commit, flush logs within this deadline."""

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ConfigError("supervisor.max_restarts", f"got {self.max_restarts}; must be >= 0")
        for name in ("period_s", "backoff_max_s", "stable_after_s", "graceful_stop_s"):
            _positive(f"supervisor.{name}", getattr(self, name))
        if self.backoff_base_s < 0:
            raise ConfigError("supervisor.backoff_base_s", "must be >= 0")


@dataclass(frozen=True)
class LoggingConfig:
    """Where the process's own structured logs go (besides stdout)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"
    file: Path | None = None
    kafka_topic: str = ""
    buffer_size: int = 10_000
    batch_size: int = 500
    flush_interval_s: float = 0.5

    def __post_init__(self) -> None:
        _positive("logging.buffer_size", self.buffer_size)
        _positive("logging.batch_size", self.batch_size)
        _positive("logging.flush_interval_s", self.flush_interval_s)


@dataclass(frozen=True)
class HealthConfig:
    """The HTTP endpoint: /healthz, /readyz, /metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("health.port", f"got {self.port}; allowed: 0..65535 (0 = any free)")


@dataclass(frozen=True)
class Config:
    """The whole process configuration; one attribute per TOML table."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    handler: HandlerConfig = field(default_factory=HandlerConfig)
    dead_letter: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    supervisor: SupervisionConfig = field(default_factory=SupervisionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    def __post_init__(self) -> None:
        uses_azure = self.auth.method != "none" and self.kafka.profile == "kafka"
        if uses_azure and self.kafka.sasl_mechanism != "OAUTHBEARER":
            raise ConfigError(
                "kafka.sasl_mechanism",
                f"auth.method = {self.auth.method!r} needs OAUTHBEARER "
                "(or kafka.profile = 'eventhubs')",
            )
        if self.kafka.profile == "eventhubs" and self.auth.method == "none":
            raise ConfigError("auth.method", "kafka.profile = 'eventhubs' needs an Azure AD method")

    @property
    def dead_letter_topic(self) -> str | None:
        if not self.dead_letter.enabled:
            return None
        return self.dead_letter.topic or f"{self.kafka.topics[0]}.dlq"


def parse_config(
    text: str, *, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Parse TOML `text` plus the environment into a Config (ConfigError on any problem)."""
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"not valid TOML: {exc}") from None
    for section, values in env_overrides(environ).items():
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, "expected a table")
        table.update(values)
    azure_secret = environ.get("AZURE_CLIENT_SECRET")
    auth = data.get("auth")
    if azure_secret and isinstance(auth, dict) and "client_secret" not in auth:
        auth["client_secret"] = EnvValue(azure_secret)
    return bind(Config, data, "", base_dir or Path.cwd())


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and parse the TOML file at `path` (relative paths inside it are relative to it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {str(path)!r}") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {str(path)!r}: {exc.strerror}") from None
    return parse_config(text, environ=environ, base_dir=path.resolve().parent)


def render_config(config: Config) -> str:
    """The effective configuration as TOML, secrets shown as '***'."""
    lines: list[str] = []
    for section in dataclasses.fields(config):
        table = getattr(config, section.name)
        lines.append(f"[{section.name}]")
        for item in dataclasses.fields(table):
            value = getattr(table, item.name)
            if value is None:
                lines.append(f"# {item.name} is not set")
            else:
                lines.append(f"{item.name} = {_render_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _render_value(value: Any) -> str:
    if isinstance(value, Secret):
        return '"***"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_render_value(item) for item in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
