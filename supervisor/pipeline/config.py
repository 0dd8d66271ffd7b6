"""The process configuration: TOML (`tomllib`) into typed, frozen objects.

Every field has a default, documented beside it, and every number a finite range
(`config_ranges`); `kafka-pipeline check-config FILE` prints the effective values with
secrets masked and each range beside its value. This module checks each key and the
rules between tables (an Azure AD method with OAUTHBEARER, no output to a consumed
topic); the Kafka rules (topic names, the server list, SASL, heartbeat below the
session timeout, the dead-letter pattern) are checked once, by the consumer's settings,
and reported under the key they came from (`settings.consumer_settings`). An empty
value that means "not set" is None (omit the key, or an empty environment variable).

Precedence, lowest first: defaults, the file, then environment variables
`KAFKA_PIPELINE_<SECTION>__<FIELD>` (e.g. `KAFKA_PIPELINE_KAFKA__BOOTSTRAP_SERVERS`); a
variable with that prefix that names no key is refused (see `env_overrides`). Secrets
(`kafka.sasl_password`, `auth.client_secret`) come only from environment variables or
from files named by `<field>_file`; `auth.client_secret` also falls back to the usual
`AZURE_CLIENT_SECRET`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from actors.consumer.retry_tiers.naming import TierMap
from actors.consumer.retry_tiers.settings import (
    MAX_KEYS_IN_RETRY,
    MAX_TIERS,
    RetryTierSettings,
    parse_delay,
)
from actors.consumer.settings import (
    MAX_BUFFERED,
    MAX_IN_FLIGHT,
    OffsetReset,
    Ordering,
    SaslMechanism,
    SecurityProtocol,
    topic_problem,
)
from core.errors import ConfigurationError
from core.logging import register_secret
from supervisor.pipeline.config_loader import ConfigError, EnvValue, Secret, bind, env_overrides
from supervisor.pipeline.config_ranges import check_ranges, range_of, ranged
from supervisor.pipeline.sinks import check_sink_tables

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
    "RetryTopicsConfig",
    "Secret",
    "SupervisionConfig",
    "file_mode_bits",
    "load_config",
    "parse_config",
    "register_secrets",
    "render_config",
    "toml_string",
]

AuthMethod = Literal[
    "none", "cli", "secret", "certificate", "default", "managed_identity", "token_file"
]


_INT32_MAX = 2**31 - 1
"""Kafka's protocol carries timeouts and counts as int32: nothing larger can be sent."""


def _not_below(where: str, value: float, other: str, floor: float) -> None:
    if value < floor:
        raise ConfigError(where, f"got {value!r}; must be >= {other} ({floor!r})")


def file_mode_bits(where: str, text: str) -> int:
    """The permission bits octal `text` names ("0600", "640"), or ConfigError naming `where`."""
    try:
        bits = int(text, 8)
    except ValueError:
        bits = -1
    if not 0 <= bits <= 0o777:
        raise ConfigError(where, f"got {text!r}; expected octal permissions 0000-0777, e.g. '0640'")
    return bits


@dataclass(frozen=True)
class KafkaConfig:
    """Where to consume from, and how to connect."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: tuple[str, ...] = ("events",)
    group_id: str = "kafka-pipeline"
    client_id: str = "kafka-pipeline"
    profile: Literal["kafka", "eventhubs"] = "kafka"
    """`eventhubs` applies Event Hubs' documented client settings and OAUTHBEARER."""
    eventhubs_namespace: str | None = None
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    auto_offset_reset: OffsetReset = "earliest"
    idempotent_producer: bool = True
    """Idempotent dead-letter and forward producers; off only for a broker without them."""
    reset_beyond_log_end: bool = False
    """Reset positions above the log end ourselves; only for a broker that does not
    answer OffsetOutOfRange (Tansu)."""
    session_timeout_ms: int = ranged(10_000, 1_000, 3_600_000, unit="ms")
    heartbeat_interval_ms: int = ranged(3_000, 10, 1_200_000, unit="ms")
    """Must also be below session_timeout_ms."""
    max_poll_records: int = ranged(500, 1, 100_000)
    commit_interval_s: float = ranged(1.0, 0.01, 600.0, unit="s")
    stall_timeout_s: float = ranged(120.0, 1.0, 86_400.0, unit="s")

    def __post_init__(self) -> None:
        """Each number's range; the Kafka rules (topic names, servers, SASL, heartbeat below
        session) are the consumer's settings' to check, once (see `settings`)."""
        check_ranges(self, "kafka")
        if self.profile == "eventhubs" and not self.eventhubs_namespace:
            raise ConfigError(
                "kafka.eventhubs_namespace", "required when kafka.profile = 'eventhubs'"
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
    scope: str | None = None
    """Token scope; unset means the Event Hubs scope of kafka.eventhubs_namespace."""
    refresh_margin_s: float = ranged(600.0, 1.0, 3_000.0, unit="s")
    """The token cache stops serving a token this long before it expires; the refresher
    replaces it 5 minutes before that (at 45 minutes into a 60-minute token)."""

    def __post_init__(self) -> None:
        check_ranges(self, "auth")
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
    """`print`, `jsonl:PATH`, `forward:TOPIC`, `delta` (configured by `[delta]`),
    `attachments` (by `[attachments]`), or your own `package.module:function`."""
    run_in_thread: bool = True
    """Run a synchronous handler in a worker thread so it cannot block the event loop."""
    file_mode: str = "0600"
    """Permissions (octal, 0000-0777) of a `jsonl:` file the handler creates."""
    classifier: str | None = None
    """`package.module:object`: a domain's error classifier (a function of an exception
    returning an ErrorCategory or None, or an object with `classify`), asked before the
    built-in rules by the consumer, its breaker and the supervisor."""
    ordering: Ordering = "partition"
    """Which records may run at once: "key" (a key's records in offset order, keys
    concurrently), "partition" (a partition's in order), "none"."""
    max_in_flight: int = ranged(1, 1, MAX_IN_FLIGHT)
    """Records (or batches) in the handler at once; 1 is one at a time. Raise it only for
    a handler that is safe to call concurrently."""
    max_buffered: int = ranged(0, 0, MAX_BUFFERED)
    """Bound on fetched records not yet finished; 0: max_poll_records with one in flight,
    else max(max_poll_records, 4 * max_in_flight), for a batch handler
    max(max_poll_records, (max_in_flight + 1) * batch_max_records); otherwise at least
    max_in_flight."""
    batch_max_records: int = ranged(500, 1, 1_000_000)
    """A batch handler's batch: at most this many records of one partition."""
    batch_max_wait_ms: int = ranged(100, 0, 600_000, unit="ms")
    """A batch handler's batch waits at most this long to fill."""

    def __post_init__(self) -> None:
        check_ranges(self, "handler")
        if self.max_buffered and self.max_buffered < self.max_in_flight:
            raise ConfigError(
                "handler.max_buffered",
                f"got {self.max_buffered}; 0 (automatic) or at least handler.max_in_flight "
                f"({self.max_in_flight})",
            )
        file_mode_bits("handler.file_mode", self.file_mode)
        builtin = self.target in ("print", "delta", "attachments") or self.target.startswith(
            ("jsonl:", "forward:")
        )
        module, _, function = self.target.partition(":")
        if not builtin and not (module and function):
            raise ConfigError(
                "handler.target",
                f"got {self.target!r}; allowed: 'print', 'jsonl:PATH', 'forward:TOPIC', "
                "'delta', 'attachments' or 'package.module:function'",
            )
        if self.forward_topic is not None:
            _check_topic("handler.target", self.forward_topic)

    @property
    def forward_topic(self) -> str | None:
        """The topic of a `forward:TOPIC` target, else None."""
        prefix, _, topic = self.target.partition(":")
        return topic if prefix == "forward" else None


@dataclass(frozen=True)
class DeadLetterConfig:
    """Where records that can never succeed go, and when to stop instead."""

    enabled: bool = True
    topic: str = "{topic}.dlq"
    """`{topic}` stands for the consumed topic: one dead-letter topic per topic by default;
    a name without `{topic}` is shared by every topic."""
    poison_window: int = ranged(100, 1, 100_000)
    poison_max_share: float = ranged(0.5, 0.0, 1.0, low_open=True)
    """More dead-lettered records than this share of the last `poison_window`: escalate."""

    def __post_init__(self) -> None:
        if not self.topic.strip():
            raise ConfigError(
                "dead_letter.topic", "must not be empty (enabled = false turns it off)"
            )
        check_ranges(self, "dead_letter")


@dataclass(frozen=True)
class DedupConfig:
    """Skip records whose trace id was already handled recently (at-least-once replays)."""

    enabled: bool = True
    header: str = "trace_id"
    json_field: str | None = None
    """When set, the trace id is read from this top-level field of a JSON value instead."""
    capacity: int = ranged(100_000, 1, 10_000_000)

    def __post_init__(self) -> None:
        check_ranges(self, "dedup")


@dataclass(frozen=True)
class RetryConfig:
    """In-place retries of a failing handler call before the consumer gives up."""

    max_attempts: int = ranged(3, 1, 100)
    base_delay_s: float = ranged(0.2, 0.0, 3_600.0, unit="s")
    max_delay_s: float = ranged(10.0, 0.0, 3_600.0, low_open=True, unit="s")
    """Must also be >= base_delay_s."""
    budget_ratio: float = ranged(0.2, 0.0, 1.0, low_open=True)
    """Retries may be at most this share of calls over a 10 s window."""

    def __post_init__(self) -> None:
        check_ranges(self, "retry")
        _not_below("retry.max_delay_s", self.max_delay_s, "retry.base_delay_s", self.base_delay_s)


@dataclass(frozen=True)
class RetryTopicsConfig:
    """Delayed retries through tier topics, so a failing record blocks nothing (off
    without delays). Each tier is a topic that must exist (on Event Hubs, an event hub:
    a Standard namespace allows ten) with a retention above its delay."""

    delays: tuple[str, ...] = ()
    """The tiers' delays in order, each a whole number and a unit, 1s..7d ("30s", "5m",
    "1h", "2d"); at most 8. Empty: off."""
    topic_pattern: str = "{topic}.retry.{delay}"
    """A tier's topic: {topic} the consumed topic, {delay} the delay ("30s"), {index}
    the tier's position from 0 (needed when two tiers share a delay)."""
    after_in_place_attempts: bool = True
    """true: a TRANSIENT or UNKNOWN failure goes to the next tier once [retry]'s in-place
    attempts are spent; false: at its first failure."""
    preserve_key_order: bool = False
    """Retry tiers break key order; true sends a key's later records to the tier its
    earlier one waits in, instead of handling them."""
    max_keys_in_retry: int = ranged(10_000, 1, MAX_KEYS_IN_RETRY)
    """Keys tracked for preserve_key_order; at the bound, fetching waits until one leaves."""

    def __post_init__(self) -> None:
        check_ranges(self, "retry_topics")
        if len(self.delays) > MAX_TIERS:
            raise ConfigError(
                "retry_topics.delays", f"{len(self.delays)} tiers; at most {MAX_TIERS}"
            )
        for delay in self.delays:
            try:
                parse_delay(delay)
            except ValueError as exc:
                raise ConfigError("retry_topics.delays", str(exc)) from None
        try:
            self.tier_settings()
        except ConfigurationError as exc:
            raise ConfigError(
                str(exc.context.get("field", "retry_topics")).replace(
                    "retry_tiers.", "retry_topics."
                ),
                str(exc.context.get("problem", exc)),
            ) from None

    def tier_settings(self) -> RetryTierSettings:
        """The consumer's settings of these tiers."""
        return RetryTierSettings(
            delays_s=tuple(parse_delay(d) for d in self.delays),
            topic_pattern=self.topic_pattern,
            after_in_place_attempts=self.after_in_place_attempts,
            preserve_key_order=self.preserve_key_order,
            max_keys_in_retry=self.max_keys_in_retry,
        )


@dataclass(frozen=True)
class BreakerConfig:
    """The circuit breaker around the handler."""

    failure_threshold: int = ranged(5, 1, 10_000)
    recovery_timeout_s: float = ranged(30.0, 0.0, 3_600.0, low_open=True, unit="s")
    half_open_max_calls: int = ranged(1, 1, 1_000)
    success_threshold: int = ranged(1, 1, 1_000)

    def __post_init__(self) -> None:
        check_ranges(self, "breaker")


@dataclass(frozen=True)
class SupervisionConfig:
    """Restart intensity, backoff and the graceful-stop deadline."""

    max_restarts: int = ranged(5, 0, 10_000)
    period_s: float = ranged(60.0, 0.0, 86_400.0, low_open=True, unit="s")
    backoff_base_s: float = ranged(0.5, 0.0, 3_600.0, unit="s")
    backoff_max_s: float = ranged(30.0, 0.0, 3_600.0, low_open=True, unit="s")
    """Must also be >= backoff_base_s."""
    stable_after_s: float = ranged(60.0, 0.0, 86_400.0, low_open=True, unit="s")
    graceful_stop_s: float = ranged(25.0, 0.1, 3_600.0, unit="s")
    """First SIGTERM: finish in-flight records, commit, flush logs within this deadline."""

    def __post_init__(self) -> None:
        check_ranges(self, "supervisor")
        _not_below(
            "supervisor.backoff_max_s",
            self.backoff_max_s,
            "supervisor.backoff_base_s",
            self.backoff_base_s,
        )


@dataclass(frozen=True)
class LoggingConfig:
    """Where the process's own structured logs go (besides stdout)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"
    file: Path | None = None
    """Appended to; must be a regular file (or creatable) on a device with space left."""
    kafka_topic: str | None = None
    buffer_size: int = ranged(10_000, 1, 10_000_000)
    batch_size: int = ranged(500, 1, 100_000)
    flush_interval_s: float = ranged(0.5, 0.01, 60.0, unit="s")
    file_mode: str = "0600"
    """Permissions (octal, 0000-0777) of `file` when the process creates it."""

    def __post_init__(self) -> None:
        check_ranges(self, "logging")
        file_mode_bits("logging.file_mode", self.file_mode)
        if self.kafka_topic is not None:
            _check_topic("logging.kafka_topic", self.kafka_topic)


@dataclass(frozen=True)
class HealthConfig:
    """The HTTP endpoint: /healthz, /readyz, /metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """An address or a name that resolves; checked (bound) before anything starts."""
    port: int = ranged(8080, 0, 65_535, unit="(0: any free port)")

    def __post_init__(self) -> None:
        check_ranges(self, "health")
        if not self.host.strip():
            raise ConfigError("health.host", "must not be empty (127.0.0.1: loopback only)")


@dataclass(frozen=True)
class Config:
    """The whole process configuration; one attribute per TOML table."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    handler: HandlerConfig = field(default_factory=HandlerConfig)
    dead_letter: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    retry_topics: RetryTopicsConfig = field(default_factory=RetryTopicsConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    supervisor: SupervisionConfig = field(default_factory=SupervisionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    delta: dict[str, Any] = field(default_factory=dict)
    """The Delta sink's table (`handler.target = "delta"`); its keys are the sink's own
    (actors.sinks.delta.DeltaSinkSettings), validated by it."""
    attachments: dict[str, Any] = field(default_factory=dict)
    """The attachments handler's table (`handler.target = "attachments"`); its keys are
    the handler's own (actors.attachments.AttachmentSettings), validated by it."""

    def __post_init__(self) -> None:
        check_sink_tables(self)
        uses_azure = self.auth.method != "none" and self.kafka.profile == "kafka"
        if uses_azure and self.kafka.sasl_mechanism != "OAUTHBEARER":
            raise ConfigError(
                "kafka.sasl_mechanism",
                f"auth.method = {self.auth.method!r} needs OAUTHBEARER "
                "(or kafka.profile = 'eventhubs')",
            )
        if self.kafka.profile == "eventhubs" and self.auth.method == "none":
            raise ConfigError("auth.method", "kafka.profile = 'eventhubs' needs an Azure AD method")
        self._refuse_loops()

    def retry_topic_names(self) -> list[str]:
        """The retry tier topics of every consumed topic (empty when retry tiers are off)."""
        tiers = self.retry_topics.tier_settings()
        return TierMap(tiers, self.kafka.topics).topics()

    def _refuse_loops(self) -> None:
        """Writing to a consumed topic feeds the pipeline its own output, without end (each
        log line about a record is one more record; at DEBUG, one record became thousands
        within seconds). The dead-letter pattern is checked with the consumer's settings."""
        consumed = set(self.kafka.topics) | set(self.retry_topic_names())
        forward = self.handler.forward_topic
        if forward in consumed:
            raise ConfigError(
                "handler.target",
                f"forward:{forward} writes to a consumed topic (kafka.topics or a retry "
                "tier): a loop",
            )
        if self.logging.kafka_topic in consumed:
            raise ConfigError(
                "logging.kafka_topic",
                f"{self.logging.kafka_topic!r} is also in kafka.topics: the logs would be "
                "consumed, and logged about, without end",
            )


def _check_topic(where: str, name: str) -> None:
    problem = topic_problem(name)
    if problem is not None:
        raise ConfigError(where, problem)


def parse_config(
    text: str, *, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Parse TOML `text` plus the environment into a Config (ConfigError on any problem)."""
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"not valid TOML: {exc}") from None
    for section, values in env_overrides(environ, Config).items():
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


def register_secrets(config: Config) -> None:
    """Have every configured secret redacted by value from all logs and error texts from
    now on (core.logging.register_secret): a secret echoed by a library, or quoted in a
    dead-letter header, is never written out."""
    for section in dataclasses.fields(config):
        table = getattr(config, section.name)
        if not dataclasses.is_dataclass(table):
            continue
        for item in dataclasses.fields(table):
            value = getattr(table, item.name)
            if isinstance(value, Secret):
                register_secret(value.reveal())


def render_config(config: Config) -> str:
    """The effective configuration as TOML, secrets shown as '***', each number's range
    in a comment beside it. Strings are TOML-escaped (control characters, quotes, NUL),
    so what is printed is one line per key and parses back to the same values."""
    lines: list[str] = []
    for section in dataclasses.fields(config):
        table = getattr(config, section.name)
        if isinstance(table, dict):  # a sink's own table: shown as given, when given
            if table:
                lines.append(f"[{section.name}]")
                lines.extend(f"{key} = {_render_value(value)}" for key, value in table.items())
                lines.append("")
            continue
        lines.append(f"[{section.name}]")
        for item in dataclasses.fields(table):
            value = getattr(table, item.name)
            allowed = range_of(item)
            if value is None:
                lines.append(f"# {item.name} is not set")
            elif allowed is not None:
                lines.append(f"{item.name} = {_render_value(value)}  # {allowed}")
            else:
                lines.append(f"{item.name} = {_render_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _render_value(value: Any) -> str:
    if isinstance(value, Secret):
        return '"***"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_render_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{key} = {_render_value(item)}" for key, item in value.items())
        return "{ " + ", ".join(items) + " }"
    if isinstance(value, int | float):
        return repr(value)
    return toml_string(str(value))


_TOML_ESCAPES: Final = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def toml_string(text: str) -> str:
    """`text` as a TOML basic string on one line: quotes, backslashes and every character
    that is not printable (control characters, NUL, line and paragraph separators) are
    escaped, so nothing in a value can break or disguise the output."""
    out = []
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
