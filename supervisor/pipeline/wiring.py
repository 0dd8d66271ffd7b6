"""The process's actor tree: one root supervisor, its children, and the streams between them.

Children, in start order (they stop in the reverse order):

    log_shipper      first, so it stops last and ships everyone's final records
    health_server    /healthz, /readyz, /metrics (when health.enabled)
    token_refresher  only when auth.method is not "none"
    breaker_monitor  pauses and resumes the consumer with the handler's breaker
    kafka_consumer   consumes, hands records to the handler, commits

Strategy ONE_FOR_ONE, every child Restart.ALWAYS: the actors do not share mutable state
through each other, only through what this wiring owns and hands to every incarnation
(the streams, the consumer's `ConsumerState`, the log buffer, the token cache), so a
restart of one never invalidates another, and each is a service that must always be
up. The error taxonomy decides the rest (see `supervisor`): TRANSIENT/UNKNOWN restart
after backoff, AUTH asks the token refresher for a fresh token first, PERMANENT or more
than `supervisor.max_restarts` restarts within `supervisor.period_s` escalate, which
ends the process. The consumer and the log shipper are built by a factory per start;
the health endpoint, the token refresher and the breaker monitor are one object each,
re-run on restart, so their counters continue.

Logging: every record goes through a `ChannelHandler` on the root logger into the log
buffer, which the shipper drains to the sinks; what is logged after the shipper stopped
is delivered once more before `run` returns.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final

import anyio
from anyio.abc import TaskStatus

from actors.breaker_monitor import BreakerMonitorActor
from actors.consumer import (
    HANDLER_BREAKER,
    BatchHandler,
    ConsumerState,
    Handler,
    KafkaConsumerActor,
    PartitionCommand,
)
from actors.log_shipper import ChannelHandler, LogBuffer, LogShipperActor, LogSink
from actors.messages import RefreshRequest
from actors.sinks import build_handler, close_handler
from actors.token_refresher import TokenRefresherActor, ask_for_fresh_token
from core.logging import ConsoleFormatter, JSONFormatter
from core.resilience import CircuitBreaker
from supervisor import ChildSpec, Restart, Strategy, Supervisor
from supervisor.pipeline.config import Config, file_mode_bits
from supervisor.pipeline.environment import check_log_file
from supervisor.pipeline.health import HealthEndpoint, liveness, readiness
from supervisor.pipeline.health_server import Check, HealthServer
from supervisor.pipeline.metrics import MetricsExporter
from supervisor.pipeline.observation import Observation
from supervisor.pipeline.settings import (
    StopBudget,
    build_auth,
    build_classifier,
    consumer_settings,
    forward_producer_settings,
    restart_backoff,
)
from supervisor.pipeline.settings import log_sinks as configured_sinks
from supervisor.pipeline.sinks import build_sink_handler, storage_scopes

__all__ = [
    "BREAKER_MONITOR",
    "HEALTH_SERVER",
    "KAFKA_CONSUMER",
    "LOG_SHIPPER",
    "ROOT",
    "TOKEN_REFRESHER",
    "Pipeline",
]

ROOT: Final = "kafka-pipeline"
LOG_SHIPPER: Final = "log_shipper"
HEALTH_SERVER: Final = "health_server"
TOKEN_REFRESHER: Final = "token_refresher"
BREAKER_MONITOR: Final = "breaker_monitor"
KAFKA_CONSUMER: Final = "kafka_consumer"

_AT_ONCE: Final = 0.0
"""Shutdown timeout of the children without a stop(): they are cancelled at once."""
_REFRESH_BEFORE_RESTART_S: Final = 30.0
_STREAM_CAPACITY: Final = 16


class Pipeline:
    """The wired actor tree for `config`; `run()` it, `stop()` it (see the module docstring).

    `handler` replaces the one `handler.target` names (the demo passes its own);
    `log_sinks` replace the configured ones; a relative `jsonl:` path is relative to
    `base_dir`. Raises ConfigurationError for a configuration that cannot be wired
    (a handler that cannot be imported, contradicting Kafka settings).
    """

    def __init__(
        self,
        config: Config,
        *,
        handler: Handler | BatchHandler | None = None,
        log_sinks: Sequence[LogSink] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.config = config
        self._auth = build_auth(config)
        self.consumer_settings = consumer_settings(config, self._auth)
        self.handler = (
            handler
            or build_sink_handler(
                config,
                self._auth.provider if self._auth else None,
                base_dir=base_dir or Path.cwd(),
                producer_settings=forward_producer_settings(self.consumer_settings),
            )
            or build_handler(
                config.handler.target,
                producer_settings=forward_producer_settings(self.consumer_settings),
                base_dir=base_dir,
                file_mode=file_mode_bits("handler.file_mode", config.handler.file_mode),
            )
        )
        self.classifier = build_classifier(config)
        self.consumer_state = ConsumerState.for_settings(
            self.consumer_settings, classifier=self.classifier
        )
        self.log_buffer = LogBuffer(config.logging.buffer_size)
        self._sinks = tuple(
            log_sinks if log_sinks is not None else configured_sinks(config, self.consumer_settings)
        )
        self._commands_send, self._commands_receive = anyio.create_memory_object_stream[
            PartitionCommand
        ](_STREAM_CAPACITY)
        self._refresh_send, self._refresh_receive = anyio.create_memory_object_stream[
            RefreshRequest
        ](_STREAM_CAPACITY)
        self.breaker_monitor = BreakerMonitorActor(
            [self.consumer_state.breaker, *_downstream_breakers(self.handler)],
            self._commands_send,
            handler_breaker_name=HANDLER_BREAKER,
        )
        announce = getattr(self.handler, "on_new_breaker", None)
        if callable(announce):  # breakers a handler makes later (a new download host's)
            announce(self.breaker_monitor.watch)
        self.token_refresher = (
            TokenRefresherActor(
                self._auth.provider,
                self._auth.cache,
                [self._auth.scope, *storage_scopes(config)],
                self._refresh_receive,
            )
            if self._auth is not None
            else None
        )
        self.metrics = MetricsExporter(self.observe)
        self.health = (
            HealthEndpoint(
                HealthServer(
                    config.health.host,
                    config.health.port,
                    live=self.live,
                    ready=self.ready,
                    metrics=self.metrics.render,
                )
            )
            if config.health.enabled
            else None
        )
        self.root = self._build_root()
        self._root_running = False
        self._stop_requested = False

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the tree until stopped (returns) or escalated (raises EscalationError).

        Raises ConfigurationError, before anything started, for what only the machine
        can tell (see `check_environment`).
        """
        if self._stop_requested:
            task_status.started()
            return
        self.check_environment()
        handler = self._install_log_handler()
        self._root_running = True
        try:
            await self.root.run(task_status=task_status)
        finally:
            self._root_running = False
            with anyio.CancelScope(shield=True):
                logging.getLogger().removeHandler(handler)
                await self._deliver_last_logs()
                await close_handler(self.handler)

    def check_environment(self) -> None:
        """Raise ConfigurationError if the machine cannot run this tree now: the log file
        cannot be appended to, the health address cannot be bound (see
        `supervisor.pipeline.environment`). `run` and `check-config` both call it."""
        if self.config.logging.file is not None:
            check_log_file(self.config.logging.file)
        if self.health is not None:
            self.health.check_port()

    def stop(self) -> None:
        """Graceful stop: every child in reverse start order (also before `run` began)."""
        self._stop_requested = True
        self.root.stop()

    # -- observing -----------------------------------------------------------------------

    def observe(self) -> Observation:
        """A snapshot of every actor's counters (what /metrics and /readyz read)."""
        refresher = self.token_refresher
        return Observation(
            consumer=self.consumer_state.stats.snapshot(),
            actors=self.root.stats().children,
            breakers=MappingProxyType(
                {name: health.state for name, health in self.breaker_monitor.stats().items()}
            ),
            tokens=MappingProxyType(refresher.stats() if refresher is not None else {}),
            log=self.log_buffer.statistics(),
            root_running=self._root_running,
        )

    def live(self) -> Check:
        """The /healthz answer."""
        return liveness(self.observe())

    def ready(self) -> Check:
        """The /readyz answer."""
        return readiness(self.observe(), KAFKA_CONSUMER)

    @property
    def health_port(self) -> int | None:
        """The port /healthz listens on (bound once started), None when disabled."""
        return self.health.port if self.health is not None else None

    # -- wiring --------------------------------------------------------------------------

    def _build_root(self) -> Supervisor:
        cfg = self.config.supervisor
        budget = StopBudget(cfg.graceful_stop_s)
        children = [
            ChildSpec(
                LOG_SHIPPER,
                factory=self._new_log_shipper,
                restart=Restart.ALWAYS,
                shutdown_timeout=budget.log_shipper,
            )
        ]
        if self.health is not None:
            children.append(ChildSpec(HEALTH_SERVER, self.health.run, shutdown_timeout=_AT_ONCE))
        if self.token_refresher is not None:
            children.append(
                ChildSpec(TOKEN_REFRESHER, self.token_refresher.run, shutdown_timeout=_AT_ONCE)
            )
        children.append(
            ChildSpec(BREAKER_MONITOR, self.breaker_monitor.run, shutdown_timeout=_AT_ONCE)
        )
        children.append(
            ChildSpec(
                KAFKA_CONSUMER,
                factory=self._new_consumer,
                restart=Restart.ALWAYS,
                shutdown_timeout=budget.consumer,
            )
        )
        return Supervisor(
            children,
            strategy=Strategy.ONE_FOR_ONE,
            max_restarts=cfg.max_restarts,
            period=cfg.period_s,
            backoff=restart_backoff(cfg),
            stable_after=cfg.stable_after_s,
            name=ROOT,
            classifier=self.classifier,
            on_auth_failure=self._refresh_before_restart,
        )

    def _new_consumer(self) -> KafkaConsumerActor:
        return KafkaConsumerActor(
            self.consumer_settings,
            self.handler,
            state=self.consumer_state,
            commands=self._commands_receive,
            refresh_requests=self._refresh_send if self._auth is not None else None,
        )

    def _new_log_shipper(self) -> LogShipperActor:
        logs = self.config.logging
        return LogShipperActor(
            self.log_buffer,
            self._sinks,
            batch_size=logs.batch_size,
            flush_interval=logs.flush_interval_s,
            drain_timeout=StopBudget(self.config.supervisor.graceful_stop_s).log_shipper,
        )

    async def _refresh_before_restart(self, child: str, error: BaseException) -> None:
        """The AUTH row: a fresh token before the restart (unless the refresher itself failed)."""
        if self._auth is None or child == TOKEN_REFRESHER:
            return
        with anyio.move_on_after(_REFRESH_BEFORE_RESTART_S):
            await ask_for_fresh_token(
                self._refresh_send, self._auth.scope, f"{child} failed: {type(error).__name__}"
            )

    def _install_log_handler(self) -> logging.Handler:
        logs = self.config.logging
        formatter = JSONFormatter() if logs.format == "json" else ConsoleFormatter()
        handler = ChannelHandler(self.log_buffer, formatter=formatter)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logs.level)
        return handler

    async def _deliver_last_logs(self) -> None:
        """Ship what was logged after the shipper stopped, within its share of the budget."""
        if self.log_buffer.statistics().queued == 0:
            return
        shipper = self._new_log_shipper()
        with anyio.move_on_after(StopBudget(self.config.supervisor.graceful_stop_s).last_logs):
            try:
                await shipper.flush()
            except Exception as exc:  # nobody ships logs any more: stderr is what is left
                print(f"kafka-pipeline: last log records not delivered: {exc!r}", file=sys.stderr)
            for sink in self._sinks:
                await sink.aclose()


def _downstream_breakers(handler: Handler | BatchHandler) -> list[CircuitBreaker]:
    """The breakers a handler calls its downstreams through, when it lists them with a
    `breakers()` method (the built-in sinks do): the monitor logs and reports them."""
    listed = getattr(handler, "breakers", None)
    return (
        [breaker for breaker in listed() if isinstance(breaker, CircuitBreaker)] if listed else []
    )
