"""From the process configuration to what each actor is built with.

Kept apart from the wiring so each mapping is a plain function, tested on its own:

- `consumer_settings`: `Config` -> the consumer actor's `ConsumerSettings`, which checks
  the Kafka rules once; its errors are reported under the configuration key. With
  `kafka.profile = "eventhubs"` the values Event Hubs documents (`event_hubs_profile`)
  replace the defaults; a kafka.* value that differs from its default still wins. The
  dead-letter topic pattern `dead_letter.topic` (`{topic}.dlq`: one per topic) is passed
  as is, and validated once, by `ConsumerSettings`. The
  poison guard judges once `min(20, poison_window)` records were seen.
- `build_auth`: the Azure identity, the token cache shared by the refresher and the
  OAUTHBEARER provider, and the scope (`auth.scope`, else that of the namespace). A
  token file must exist and be readable (ConfigError otherwise); what it holds is
  checked by the refresher, since its writer may replace it at any time.
- `log_sinks`: stdout always, plus `logging.file` and `logging.kafka_topic` when set.
- `restart_backoff`: the root supervisor's backoff (the delays' ranges and order are
  the configuration's to check, when the file is read).
- `StopBudget`: how `supervisor.graceful_stop_s` is shared out. Children stop one after
  another in reverse start order, so the parts add up: the consumer (finish the record
  in hand, commit, leave the group; its final commit bounded by half of that) 60%, the
  log shipper (deliver what is queued) 25%, the last log records (logged after the
  shipper stopped) 10%; the others have no stop() and are cancelled at once. The last
  5% is the margin before the process's own deadline stops it at once.
"""

from __future__ import annotations

import importlib
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, cast

from actors.consumer import (
    ConsumerSettings,
    DedupSettings,
    PoisonGuardSettings,
    RetryBudgetSettings,
    event_hubs_profile,
    producer_kwargs,
)
from actors.log_shipper import FileSink, KafkaSink, LogSink, StdoutSink
from core.auth import (
    AzureCredentialProvider,
    EventHubsTokenProvider,
    KafkaOAuthError,
    TokenCache,
    eventhubs_scope_for,
)
from core.errors import ConfigurationError, UserClassifier, compose_classifier
from core.resilience import CircuitBreakerConfig, RetryConfig
from core.types import ErrorClassifier
from supervisor import Backoff
from supervisor.pipeline.config import (
    AuthConfig,
    Config,
    ConfigError,
    KafkaConfig,
    SupervisionConfig,
    file_mode_bits,
)

__all__ = [
    "AuthWiring",
    "StopBudget",
    "build_auth",
    "consumer_settings",
    "forward_producer_settings",
    "log_sinks",
    "restart_backoff",
]

POISON_MIN_SAMPLE: Final = 20
"""Records the poison guard must have seen before it may judge (capped at the window)."""

_SECURITY_KEYS: Final = frozenset({"security_protocol", "ssl_context"})


@dataclass(frozen=True, slots=True)
class StopBudget:
    """Shutdown timeouts whose sum fits within `graceful_stop_s` (see the module docstring)."""

    graceful_stop_s: float

    @property
    def consumer(self) -> float:
        """The consumer child's shutdown timeout: the record in hand, then commit and leave."""
        return 0.6 * self.graceful_stop_s

    @property
    def consumer_exit(self) -> float:
        """The consumer's own bound on its final commit and leaving the group (a part of
        `consumer`, not added to it)."""
        return 0.3 * self.graceful_stop_s

    @property
    def log_shipper(self) -> float:
        """The log shipper's shutdown timeout: deliver every queued record."""
        return 0.25 * self.graceful_stop_s

    @property
    def last_logs(self) -> float:
        """Delivering what was logged after the log shipper stopped."""
        return 0.1 * self.graceful_stop_s


@dataclass(frozen=True, slots=True)
class AuthWiring:
    """One Azure identity behind the OAUTHBEARER provider and the token refresher."""

    provider: AzureCredentialProvider
    cache: TokenCache
    """Shared: the refresher writes it, the OAUTHBEARER provider reads it."""
    scope: str
    token_provider: EventHubsTokenProvider


def build_auth(config: Config) -> AuthWiring | None:
    """The auth parts for `config.auth`, or None for `method = "none"`."""
    auth = config.auth
    if auth.method == "none":
        return None
    cache = TokenCache(refresh_margin=timedelta(seconds=auth.refresh_margin_s))
    provider = _provider(auth, cache)
    scope = auth.scope or _namespace_scope(config.kafka)
    return AuthWiring(provider, cache, scope, EventHubsTokenProvider(provider, scope))


def _provider(auth: AuthConfig, cache: TokenCache) -> AzureCredentialProvider:
    if auth.method == "cli":
        return AzureCredentialProvider.azure_cli(tenant_id=auth.tenant_id, cache=cache)
    if auth.method == "secret":
        assert auth.client_secret is not None  # AuthConfig requires it for this method
        return AzureCredentialProvider.client_secret(
            auth.tenant_id, auth.client_id, auth.client_secret.reveal(), cache=cache
        )
    if auth.method == "certificate":
        assert auth.certificate_path is not None  # AuthConfig requires it for this method
        return AzureCredentialProvider.certificate(
            auth.tenant_id, auth.client_id, auth.certificate_path, cache=cache
        )
    if auth.method == "managed_identity":
        return AzureCredentialProvider.managed_identity(auth.client_id or None, cache=cache)
    if auth.method == "token_file":
        assert auth.token_file is not None  # AuthConfig requires it for this method
        _require_readable_file("auth.token_file", auth.token_file)
        return AzureCredentialProvider.token_file(auth.token_file, cache=cache)
    return AzureCredentialProvider.default(cache=cache)


def _require_readable_file(field: str, path: Path) -> None:
    """Refuse, before anything starts, a file that is missing, not a file, or unreadable.

    Only that: the contents are the refresher's to judge, on every read, because the
    writer (a sidecar) may rewrite the file at any time, and may be doing so right now.
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ConfigError(field, f"{path} cannot be read: it is not a regular file")
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise ConfigError(
            field, f"{path} does not exist: check the path, and that its writer has run"
        ) from None
    except OSError as exc:
        raise ConfigError(
            field, f"{path} cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None


def _namespace_scope(kafka: KafkaConfig) -> str:
    source = kafka.eventhubs_namespace or kafka.bootstrap_servers.split(",")[0]
    try:
        return eventhubs_scope_for(source)
    except KafkaOAuthError as exc:
        raise ConfigError("auth.scope", f"not set, and {exc}") from None


_KAFKA_DEFAULTS: Final = KafkaConfig()


def consumer_settings(config: Config, auth: AuthWiring | None = None) -> ConsumerSettings:
    """The consumer actor's settings for `config` (see the module docstring).

    The consumer's settings check the Kafka rules (topic names, the server list, SASL,
    heartbeat below session timeout, the dead-letter pattern); a mistake is reported as
    a ConfigError naming the configuration key it came from.
    """
    try:
        return _consumer_settings(config, auth)
    except ConfigError:
        raise
    except ConfigurationError as exc:
        raise _named_by_key(exc) from None


_CONSUMER_KEYS: Final = {
    **{
        name: f"kafka.{name}"
        for name in (
            "bootstrap_servers",
            "topics",
            "group_id",
            "client_id",
            "security_protocol",
            "sasl_mechanism",
            "sasl_username",
            "sasl_password",
            "session_timeout_ms",
            "heartbeat_interval_ms",
            "max_poll_records",
            "auto_offset_reset",
            "commit_interval_s",
            "stall_timeout_s",
        )
    },
    "dead_letter_topic": "dead_letter.topic",
    "dedup.header": "dedup.header",
    "retry_tiers.topic_pattern": "retry_topics.topic_pattern",
}
"""Consumer setting -> the configuration key it is built from (same name, with its table)."""


def _named_by_key(error: ConfigurationError) -> ConfigurationError:
    key = _CONSUMER_KEYS.get(str(error.context.get("field")))
    if key is None:
        return error
    problem = str(error.context.get("problem"))
    if key == "kafka.sasl_password":
        problem += "; set KAFKA_PIPELINE_KAFKA__SASL_PASSWORD or kafka.sasl_password_file"
    return ConfigError(key, problem)


def _consumer_settings(config: Config, auth: AuthWiring | None) -> ConsumerSettings:
    kafka, dead_letter = config.kafka, config.dead_letter
    tuned = {
        name: getattr(kafka, name)
        for name in (
            "client_id",
            "session_timeout_ms",
            "heartbeat_interval_ms",
            "max_poll_records",
            "auto_offset_reset",
            "idempotent_producer",
            "reset_beyond_log_end",
            "commit_interval_s",
            "stall_timeout_s",
        )
    }
    behaviour: dict[str, Any] = {
        "dead_letter_topic": dead_letter.topic if dead_letter.enabled else None,
        "dedup": DedupSettings(
            enabled=config.dedup.enabled,
            header=config.dedup.header,
            json_field=config.dedup.json_field,
            capacity=config.dedup.capacity,
        ),
        "poison": PoisonGuardSettings(
            window=dead_letter.poison_window,
            max_share=dead_letter.poison_max_share,
            min_sample=min(POISON_MIN_SAMPLE, dead_letter.poison_window),
        ),
        "retry": RetryConfig(
            max_attempts=config.retry.max_attempts,
            base_delay_s=config.retry.base_delay_s,
            max_delay_s=config.retry.max_delay_s,
        ),
        "retry_budget": RetryBudgetSettings(ratio=config.retry.budget_ratio),
        "retry_tiers": config.retry_topics.tier_settings(),
        "breaker": CircuitBreakerConfig(
            failure_threshold=config.breaker.failure_threshold,
            recovery_timeout_s=config.breaker.recovery_timeout_s,
            half_open_max_calls=config.breaker.half_open_max_calls,
            success_threshold=config.breaker.success_threshold,
        ),
        "sync_handler_in_thread": config.handler.run_in_thread,
        "ordering": config.handler.ordering,
        "max_in_flight": config.handler.max_in_flight,
        "max_buffered": config.handler.max_buffered or None,
        "batch_max_records": config.handler.batch_max_records,
        "batch_max_wait_ms": config.handler.batch_max_wait_ms,
        "shutdown_timeout_s": StopBudget(config.supervisor.graceful_stop_s).consumer_exit,
    }
    if kafka.profile == "eventhubs":
        assert auth is not None  # Config requires an Azure AD method for Event Hubs
        assert kafka.eventhubs_namespace is not None  # and KafkaConfig a namespace
        changed = {k: v for k, v in tuned.items() if v != getattr(_KAFKA_DEFAULTS, k)}
        return event_hubs_profile(
            kafka.eventhubs_namespace,
            topics=kafka.topics,
            group_id=kafka.group_id,
            token_provider=auth.token_provider,
            auth_scope=auth.scope,
            **changed,
            **behaviour,
        )
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        topics=kafka.topics,
        group_id=kafka.group_id,
        security_protocol=kafka.security_protocol,
        sasl_mechanism=kafka.sasl_mechanism,
        sasl_username=kafka.sasl_username,
        sasl_password=kafka.sasl_password.reveal() if kafka.sasl_password else None,
        oauth_token_provider=auth.token_provider if auth else None,
        auth_scope=auth.scope if auth else None,
        **tuned,
        **behaviour,
    )


def restart_backoff(supervision: SupervisionConfig) -> Backoff:
    """The supervisor's restart backoff: exponential from backoff_base_s up to backoff_max_s."""
    return Backoff(base=supervision.backoff_base_s, max=supervision.backoff_max_s)


def forward_producer_settings(settings: ConsumerSettings) -> dict[str, Any]:
    """Producer arguments for the `forward:` handler: the consumer's connection, acks=all."""
    return {**producer_kwargs(settings), "client_id": f"{settings.client_id}-forward"}


def build_classifier(config: Config) -> ErrorClassifier:
    """The error classifier of `handler.classifier` asked before the built-in rules
    (core.errors.compose_classifier), or the built-in rules alone when it is unset."""
    target = config.handler.classifier
    if target is None:
        return compose_classifier(None)
    module_name, _, attribute = target.partition(":")
    if not (module_name and attribute):
        raise ConfigError("handler.classifier", f"got {target!r}; expected 'package.module:object'")
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("handler.classifier", f"cannot import {target!r}: {exc}") from None
    if not (callable(getattr(found, "classify", None)) or callable(found)):
        raise ConfigError(
            "handler.classifier",
            f"{target!r} is neither a function of an exception nor has a classify() method",
        )
    return compose_classifier(cast(UserClassifier, found))


def log_sinks(config: Config, settings: ConsumerSettings) -> list[LogSink]:
    """Where the process's own log records go (see the module docstring)."""
    sinks: list[LogSink] = [StdoutSink()]
    if config.logging.file is not None:
        mode = file_mode_bits("logging.file_mode", config.logging.file_mode)
        sinks.append(FileSink(config.logging.file, file_mode=mode))
    if config.logging.kafka_topic:
        sinks.append(
            KafkaSink(
                config.logging.kafka_topic,
                bootstrap_servers=settings.bootstrap_servers,
                producer_settings=_security_only(producer_kwargs(settings), settings.client_id),
            )
        )
    return sinks


def _security_only(kwargs: Mapping[str, Any], client_id: str) -> dict[str, Any]:
    kept = {k: v for k, v in kwargs.items() if k in _SECURITY_KEYS or k.startswith("sasl_")}
    return {**kept, "client_id": f"{client_id}-logs"}
