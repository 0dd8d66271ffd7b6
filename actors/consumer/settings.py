"""Everything the Kafka consumer actor is configured with, validated once, frozen.

`ConsumerSettings` holds the aiokafka connection and fetch settings next to the
consumer's own behaviour (dead-letter topic, dedup, poison guard, stall watchdog, commit
interval, retries, handler breaker). A mistake raises ConfigurationError naming the field
at construction, not at the first record. `event_hubs_profile` gives the values Azure
Event Hubs documents for Kafka clients. The SASL password is masked in `repr`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import ssl
import string
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from aiokafka.abc import AbstractTokenProvider

from actors.consumer.retry_tiers.naming import TierMap
from actors.consumer.retry_tiers.settings import RetryTierSettings
from core.auth.kafka_oauth import KafkaOAuthError, eventhubs_scope_for
from core.errors import ConfigurationError
from core.resilience.backoff import RetryConfig
from core.resilience.circuit_config import CircuitBreakerConfig

__all__ = [
    "EVENT_HUBS_MAX_REQUEST_SIZE",
    "ORDERINGS",
    "ConsumerSettings",
    "DedupSettings",
    "OffsetReset",
    "Ordering",
    "PoisonGuardSettings",
    "RetryBudgetSettings",
    "SaslMechanism",
    "SecurityProtocol",
    "bootstrap_problem",
    "event_hubs_profile",
    "topic_problem",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Ordering = Literal["key", "partition", "none"]
ORDERINGS: Final = ("key", "partition", "none")
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
OffsetReset = Literal["earliest", "latest"]
"""The value types of these settings, defined once: the process configuration uses them too."""

_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
_PASSWORD_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SECRET_FIELDS: Final = frozenset({"sasl_password"})

EVENT_HUBS_MAX_REQUEST_SIZE: Final = 1_000_000
"""Event Hubs rejects produce requests above 1 MB (the dead-letter producer's limit)."""


_TOPIC_CHARACTERS: Final = re.compile(r"[a-zA-Z0-9._-]+")
_TOPIC_MAX_LENGTH: Final = 249
_BOOTSTRAP_SERVER: Final = re.compile(
    r"(?:\[(?P<ipv6>[^\[\]]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d{1,5})"
)


def topic_problem(name: str) -> str | None:
    """What makes `name` an invalid Kafka topic name, or None when it is valid.

    Kafka's rule: 1 to 249 characters of ASCII letters, digits, '.', '_' and '-', and
    not '.' or '..'. A broker refuses anything else, and a client retries forever.
    """
    if not name:
        return "a topic name must not be empty"
    if len(name) > _TOPIC_MAX_LENGTH:
        return f"topic name of {len(name)} characters; at most {_TOPIC_MAX_LENGTH}"
    if name in (".", ".."):
        return f"{name!r} is not allowed as a topic name"
    if not _TOPIC_CHARACTERS.fullmatch(name):
        return f"{name!r} is not a valid topic name; allowed: a-z A-Z 0-9 . _ -"
    return None


def bootstrap_problem(servers: str) -> str | None:
    """What makes `servers` an unusable `host:port,host:port` list, or None.

    Each entry is `host:port` with a port in 1..65535; an IPv6 address is bracketed
    (`[::1]:9092`). Checked only for form: whether the host resolves is the broker
    connection's concern, which retries (DNS may come up after the process).
    """
    entries = [entry.strip() for entry in servers.split(",")]
    if not any(entries):
        return "must not be empty"
    for entry in entries:
        match = _BOOTSTRAP_SERVER.fullmatch(entry)
        if match is None or not 1 <= int(match["port"]) <= 65_535 or not _ipv6(match["ipv6"]):
            return (
                f"{entry!r} is not host:port (port 1..65535; IPv6 as [address]:port), "
                f"in {servers!r}"
            )
    return None


def _ipv6(text: str | None) -> bool:
    """True unless `text` is given and is not an IPv6 address (a zone such as %eth0 allowed)."""
    if text is None:
        return True
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


MAX_IN_FLIGHT: Final = 10_000
"""More concurrent handler calls than this is a typo, not a plan."""
MAX_BUFFERED: Final = 1_000_000
BUFFERED_PER_IN_FLIGHT: Final = 4
"""Default buffer per record in flight: a lane that finishes finds its next record queued."""


def _require(condition: bool, field_name: str, problem: str) -> None:
    """Raise ConfigurationError naming the setting; `context["field"]` holds its name so
    a caller mapping its own keys to these settings can name its key instead."""
    if not condition:
        raise ConfigurationError(
            f"consumer setting {field_name}: {problem}",
            context={"field": field_name, "problem": problem},
        )


_INT32_MAX: Final = 2**31 - 1
"""Kafka's protocol sends these counts, sizes and timeouts as int32."""


def _positive(settings: object, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, int):
            _require(0 < value <= _INT32_MAX, name, f"got {value!r}; allowed: 1..{_INT32_MAX}")
        _require(
            value > 0 and math.isfinite(value),
            name,
            f"got {value!r}; must be a finite number greater than 0",
        )


@dataclass(frozen=True, slots=True)
class DedupSettings:
    """Skip records whose trace id was handled recently (see actors.consumer.dedup)."""

    enabled: bool = True
    header: str | None = "trace_id"
    """Header holding the trace id; ignored when `json_field` is set."""
    json_field: str | None = None
    """Top-level field of a JSON value holding the trace id, instead of a header."""
    capacity: int = 100_000
    """At most this many ids are remembered (least recently handled evicted first)."""
    ttl_s: float | None = None
    """Forget an id after this many seconds; None keeps it until evicted."""

    def __post_init__(self) -> None:
        _positive(self, "capacity")
        if self.ttl_s is not None:
            _positive(self, "ttl_s")
        if self.enabled:
            _require(
                bool(self.json_field or self.header),
                "dedup.header",
                "dedup needs a trace id header or a JSON field (or enabled=False)",
            )


@dataclass(frozen=True, slots=True)
class PoisonGuardSettings:
    """Escalate when too many of the latest records were dead-lettered (actors.consumer.poison)."""

    window: int = 100
    max_share: float = 0.5
    min_sample: int = 20

    def __post_init__(self) -> None:
        _positive(self, "window", "min_sample")
        _require(0 < self.max_share <= 1, "poison.max_share", f"got {self.max_share!r}; in (0, 1]")
        _require(
            self.min_sample <= self.window,
            "poison.min_sample",
            f"got {self.min_sample}; must not exceed poison.window ({self.window})",
        )


@dataclass(frozen=True, slots=True)
class RetryBudgetSettings:
    """Retries of the handler may add at most `ratio` to its calls (core.resilience.RetryBudget)."""

    ratio: float = 0.2
    window_s: float = 10.0
    min_retries_per_window: int = 10

    def __post_init__(self) -> None:
        _require(0 <= self.ratio <= 1, "retry_budget.ratio", f"got {self.ratio!r}; in [0, 1]")
        _positive(self, "window_s")
        _require(
            self.min_retries_per_window >= 0,
            "retry_budget.min_retries_per_window",
            f"got {self.min_retries_per_window!r}; must be >= 0",
        )


@dataclass(frozen=True, slots=True, repr=False)
class ConsumerSettings:
    """The Kafka consumer actor's configuration (aiokafka's names where it has one)."""

    bootstrap_servers: str
    topics: tuple[str, ...]
    group_id: str
    client_id: str = "kafka-pipeline"

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    oauth_token_provider: Any = None
    """An aiokafka AbstractTokenProvider (core.auth.create_kafka_oauth_callback) for OAUTHBEARER."""
    ssl_context: ssl.SSLContext | None = None
    """None with SSL or SASL_SSL means `ssl.create_default_context()`."""
    auth_scope: str | None = None
    """Token scope to refresh (RefreshRequest) when the handler fails with an AUTH error."""

    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    max_poll_records: int = 500
    """Largest batch taken from one fetch."""
    fetch_max_wait_ms: int = 500
    fetch_min_bytes: int = 1
    fetch_max_bytes: int = 52_428_800
    max_partition_fetch_bytes: int = 1_048_576
    connections_max_idle_ms: int = 540_000
    metadata_max_age_ms: int = 300_000
    request_timeout_ms: int = 40_000
    auto_offset_reset: OffsetReset = "earliest"
    """Where a group without a committed offset starts (Tansu's "latest" is wrong)."""
    idempotent_producer: bool = True
    """Dead-letter and `forward:` producers are idempotent (no duplicates from their own
    retries). Needs a broker with idempotent producers: Apache Kafka and Event Hubs have
    them; Tansu (the demo's embedded broker) does not."""
    reset_beyond_log_end: bool = False
    """For a broker that answers a fetch above the log end with no records instead of
    OffsetOutOfRange (Tansu): reset such positions by `auto_offset_reset` itself
    (actors.consumer.out_of_range). Off for Apache Kafka and Event Hubs, which report
    OffsetOutOfRange, so aiokafka resets, and a lagging high-water mark is never mistaken
    for a lost log."""

    dead_letter_topic: str | None = "{topic}.dlq"
    """Topic for PERMANENT failures; `{topic}` is the source topic. None: escalate instead."""
    max_request_size: int = 1_048_576
    """The dead-letter producer's request size limit."""

    dedup: DedupSettings = field(default_factory=DedupSettings)
    poison: PoisonGuardSettings = field(default_factory=PoisonGuardSettings)
    stall_timeout_s: float | None = 120.0
    """Restart when lagging partitions yield nothing this long; None disables the watchdog."""
    commit_interval_s: float = 1.0
    """Commit finished offsets at most this often (and on revoke and on stop)."""
    shutdown_timeout_s: float = 5.0
    """Bound on the final commit and leaving the group when the actor exits."""
    refresh_timeout_s: float = 30.0
    """Bound on waiting for the token refresher after an AUTH failure."""
    sync_handler_in_thread: bool = True
    """Run a synchronous handler in a worker thread so it cannot block the event loop (one
    trip to the thread per partition's share of a batch); False calls it on the loop."""
    ordering: Ordering = "partition"
    """Which records may run at the same time (actors.consumer.lanes): "key" runs records
    of one key in offset order and different keys concurrently (null keys: in partition
    order), "partition" runs each partition in order and partitions concurrently,
    "none" runs any records concurrently. The default keeps each partition's offset
    order, what a handler written for a plain Kafka loop assumes; "key" is the choice
    for I/O-bound handlers (the most concurrency that keeps per-key order)."""
    max_in_flight: int = 1
    """Records (or batches) handed to the handler at once, per process; a synchronous
    handler gets this many worker threads at most. The default, 1, hands over one record
    at a time: concurrency is asked for, since only the handler's author knows that the
    handler is safe to call concurrently (shared clients, files, counters)."""
    max_buffered: int | None = None
    """Bound on fetched records not yet finished (queued plus in flight); fetching waits
    while it is reached, and a batch is at most this long. None: `max_poll_records` with
    one record in flight (a batch is fetched once the one before finished, as a plain
    loop does), else max(max_poll_records, 4 * max_in_flight); for a batch handler
    max(max_poll_records, (max_in_flight + 1) * batch_max_records), room for a full
    batch in every call and the next one filling (at most 1,000,000)."""
    batch_max_records: int = 500
    """A batch handler gets at most this many records of one partition per call."""
    batch_max_wait_ms: int = 100
    """A batch handler's call waits at most this long for a batch to fill."""
    retry: RetryConfig = field(default_factory=RetryConfig)
    """In-place retries of a TRANSIENT or UNKNOWN handler failure before the actor crashes."""
    retry_budget: RetryBudgetSettings = field(default_factory=RetryBudgetSettings)
    breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    """The handler's breaker: opening it pauses the partitions instead of crashing."""
    retry_tiers: RetryTierSettings = field(default_factory=RetryTierSettings)
    """Delayed retries through tier topics (actors.consumer.retry_tiers); off by default."""

    def __post_init__(self) -> None:
        servers = bootstrap_problem(self.bootstrap_servers)
        _require(servers is None, "bootstrap_servers", str(servers))
        _require(bool(self.topics), "topics", "needs at least one topic name")
        for topic in self.topics:
            problem = topic_problem(topic)
            _require(problem is None, "topics", str(problem))
        _require(bool(self.group_id.strip()), "group_id", "must not be empty (commits need it)")
        self._check_security()
        _positive(
            self,
            "session_timeout_ms",
            "heartbeat_interval_ms",
            "max_poll_interval_ms",
            "max_poll_records",
            "fetch_max_wait_ms",
            "fetch_min_bytes",
            "fetch_max_bytes",
            "max_partition_fetch_bytes",
            "connections_max_idle_ms",
            "metadata_max_age_ms",
            "request_timeout_ms",
            "max_request_size",
            "commit_interval_s",
            "shutdown_timeout_s",
            "refresh_timeout_s",
            "max_in_flight",
            "batch_max_records",
        )
        _require(
            self.batch_max_wait_ms >= 0,
            "batch_max_wait_ms",
            f"got {self.batch_max_wait_ms!r}; must be >= 0",
        )
        self._check_concurrency()
        _require(
            self.heartbeat_interval_ms < self.session_timeout_ms,
            "heartbeat_interval_ms",
            f"got {self.heartbeat_interval_ms}; must be below session_timeout_ms "
            f"({self.session_timeout_ms})",
        )
        _require(
            self.auto_offset_reset in ("earliest", "latest"),
            "auto_offset_reset",
            f"got {self.auto_offset_reset!r}; allowed: 'earliest', 'latest'",
        )
        if self.stall_timeout_s is not None:
            _positive(self, "stall_timeout_s")
        if self.dead_letter_topic is not None:
            self._check_dead_letter_topic(self.dead_letter_topic)
        self._check_retry_tiers()

    def _check_concurrency(self) -> None:
        _require(
            self.ordering in ORDERINGS,
            "ordering",
            f"got {self.ordering!r}; allowed: {', '.join(map(repr, ORDERINGS))}",
        )
        _require(
            self.max_in_flight <= MAX_IN_FLIGHT,
            "max_in_flight",
            f"got {self.max_in_flight}; at most {MAX_IN_FLIGHT}",
        )
        if self.max_buffered is not None:
            _require(
                self.max_in_flight <= self.max_buffered <= MAX_BUFFERED,
                "max_buffered",
                f"got {self.max_buffered}; must be in [max_in_flight ({self.max_in_flight}), "
                f"{MAX_BUFFERED}]",
            )

    def buffer_bound(self, *, batches: bool = False) -> int:
        """The bound on fetched records not yet finished (`max_buffered` or its default;
        `batches`: for a batch handler)."""
        if self.max_buffered is not None:
            return self.max_buffered
        if batches:
            full = (self.max_in_flight + 1) * self.batch_max_records
            return min(MAX_BUFFERED, max(self.max_poll_records, full))
        if self.max_in_flight == 1:
            return self.max_poll_records
        return max(self.max_poll_records, BUFFERED_PER_IN_FLIGHT * self.max_in_flight)

    def _check_security(self) -> None:
        protocol, mechanism = self.security_protocol, self.sasl_mechanism
        _require(protocol in _PROTOCOLS, "security_protocol", f"got {protocol!r}; {_PROTOCOLS}")
        if not protocol.startswith("SASL_"):
            _require(mechanism is None, "sasl_mechanism", f"{mechanism!r} needs a SASL_* protocol")
            return
        _require(mechanism in _MECHANISMS, "sasl_mechanism", f"got {mechanism!r}; {_MECHANISMS}")
        if mechanism in _PASSWORD_MECHANISMS:
            _require(bool(self.sasl_username), "sasl_username", f"required for {mechanism}")
            _require(bool(self.sasl_password), "sasl_password", f"required for {mechanism}")
        else:
            _require(
                isinstance(self.oauth_token_provider, AbstractTokenProvider),
                "oauth_token_provider",
                f"got {self.oauth_token_provider!r}; OAUTHBEARER needs an aiokafka "
                "AbstractTokenProvider (see core.auth.create_kafka_oauth_callback)",
            )

    def _check_dead_letter_topic(self, template: str) -> None:
        """Only the plain `{topic}` placeholder (no attribute, index, conversion or format
        spec: `{topic.__class__}` would render a class name), and every resulting name
        is a valid topic that is not consumed from (that would loop)."""
        try:
            fields = [
                part[1:] for part in string.Formatter().parse(template) if part[1] is not None
            ]
        except ValueError:
            fields = [("?", None, None)]
        _require(
            all(field == ("topic", "", None) for field in fields),
            "dead_letter_topic",
            f"{template!r} may only use the placeholder {{topic}}",
        )
        names = {template.format(topic=topic) for topic in self.topics}
        for name in sorted(names):
            problem = topic_problem(name)
            _require(problem is None, "dead_letter_topic", f"{template!r} gives {problem}")
        clash = names & set(self.topics)
        _require(not clash, "dead_letter_topic", f"{sorted(clash)} is also consumed from")

    def _check_retry_tiers(self) -> None:
        """Every tier topic is a valid name, no two tiers of a source share one, and none
        is a source or a dead-letter topic (either would mix records or loop)."""
        tiers = self.retry_tiers
        if not tiers.enabled:
            return
        names = TierMap(tiers, self.topics).topics()
        for name in names:
            problem = topic_problem(name)
            _require(problem is None, "retry_tiers.topic_pattern", f"gives {problem}")
        _require(
            len(names) == len(self.topics) * len(tiers.delays_s),
            "retry_tiers.topic_pattern",
            f"{tiers.topic_pattern!r} gives two tiers the same topic; add {{index}}",
        )
        clash = set(names) & set(self.topics)
        _require(not clash, "retry_tiers.topic_pattern", f"{sorted(clash)} is also a source")
        if self.dead_letter_topic is not None:
            letters = {self.dead_letter_topic.format(topic=t) for t in self.topics}
            clash = set(names) & letters
            _require(
                not clash, "retry_tiers.topic_pattern", f"{sorted(clash)} is a dead-letter topic"
            )

    @property
    def tier_map(self) -> TierMap:
        """The retry tier topics of the source topics (empty when tiers are off)."""
        return TierMap(self.retry_tiers, self.topics)

    @property
    def consumed_topics(self) -> tuple[str, ...]:
        """What the consumer subscribes to: the source topics and their retry tiers."""
        return (*self.topics, *self.tier_map.topics())

    def dead_letter_topic_for(self, topic: str) -> str | None:
        """The dead-letter topic for records of `topic` (a tier's: its source's); None
        when dead-lettering is off."""
        if self.dead_letter_topic is None:
            return None
        tier = self.tier_map.tier_of(topic) if self.retry_tiers.enabled else None
        return self.dead_letter_topic.format(topic=topic if tier is None else tier.source)

    def __repr__(self) -> str:
        shown = (
            f"{f.name}='***'"
            if f.name in _SECRET_FIELDS and getattr(self, f.name) is not None
            else f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
        )
        return f"ConsumerSettings({', '.join(shown)})"


def event_hubs_profile(
    namespace: str,
    *,
    topics: tuple[str, ...],
    group_id: str,
    token_provider: Any,
    **overrides: Any,
) -> ConsumerSettings:
    """Settings for an Azure Event Hubs namespace's Kafka endpoint, over OAUTHBEARER.

    `namespace` is the namespace name or its host (`<name>.servicebus.windows.net`).
    `token_provider` is aiokafka's OAUTHBEARER provider (core.auth.create_kafka_oauth_callback);
    its scope (or the namespace's) is what AUTH failures ask the token refresher to refresh.
    The values are the ones Event Hubs documents for Kafka clients: the service closes
    idle connections after 240 s, hence connections_max_idle_ms and metadata_max_age_ms of
    180 s; session_timeout_ms 30 s; request_timeout_ms 60 s; produce requests of at most
    1 MB. Event Hubs does not create topics: the dead-letter event hub must exist.
    `overrides` replace any field (the 1 MB request limit still holds).
    """
    _require(bool(namespace.strip()), "namespace", "the Event Hubs namespace must not be empty")
    try:
        scope = eventhubs_scope_for(namespace)
    except KafkaOAuthError as exc:
        raise ConfigurationError(f"consumer setting namespace: {exc}") from exc
    host = urlsplit(scope).netloc
    profile: dict[str, Any] = {
        "bootstrap_servers": f"{host}:9093",
        "topics": topics,
        "group_id": group_id,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "oauth_token_provider": token_provider,
        "ssl_context": ssl.create_default_context(),
        "auth_scope": getattr(token_provider, "scope", None) or scope,
        "connections_max_idle_ms": 180_000,
        "metadata_max_age_ms": 180_000,
        "session_timeout_ms": 30_000,
        "request_timeout_ms": 60_000,
        "max_request_size": EVENT_HUBS_MAX_REQUEST_SIZE,
    }
    settings = ConsumerSettings(**{**profile, **overrides})
    _require(
        settings.max_request_size <= EVENT_HUBS_MAX_REQUEST_SIZE,
        "max_request_size",
        f"got {settings.max_request_size}; Event Hubs accepts at most "
        f"{EVENT_HUBS_MAX_REQUEST_SIZE} bytes",
    )
    return settings
