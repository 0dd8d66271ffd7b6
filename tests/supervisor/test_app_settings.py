"""From the TOML configuration to what each actor is built with."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.log_shipper import FileSink, KafkaSink, StdoutSink
from supervisor.app_settings import (
    StopBudget,
    build_auth,
    consumer_settings,
    forward_producer_settings,
    log_sinks,
    restart_backoff,
)
from supervisor.config import Config, ConfigError, DeadLetterConfig, parse_config

NO_ENV: dict[str, str] = {}
EVENT_HUBS = """
[kafka]
profile = "eventhubs"
eventhubs_namespace = "myns"
topics = ["telemetry"]
group_id = "g"
{kafka_extra}
[auth]
method = "token_file"
token_file = "token.json"
{auth_extra}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The directory of the configuration file, with the token file it names."""
    (tmp_path / "token.json").write_text('{"access_token": "t", "expires_on": 4102444800}')
    return tmp_path


def _event_hubs(config_dir: Path, kafka_extra: str = "", auth_extra: str = "") -> Config:
    text = EVENT_HUBS.format(kafka_extra=kafka_extra, auth_extra=auth_extra)
    return parse_config(text, environ=NO_ENV, base_dir=config_dir)


def test_kafka_and_behaviour_settings_reach_the_consumer() -> None:
    """Connection, group, tuning, retry, breaker and dedup values are carried over."""
    config = parse_config(
        """
        [kafka]
        bootstrap_servers = "h1:9092,h2:9092"
        topics = ["a", "b"]
        group_id = "grp"
        session_timeout_ms = 2000
        heartbeat_interval_ms = 200
        max_poll_records = 50
        [retry]
        max_attempts = 4
        base_delay_s = 0.1
        max_delay_s = 2.0
        budget_ratio = 0.5
        [breaker]
        failure_threshold = 9
        recovery_timeout_s = 3.0
        [dedup]
        json_field = "trace"
        capacity = 10
        [handler]
        run_in_thread = false
        ordering = "key"
        max_in_flight = 64
        max_buffered = 512
        batch_max_records = 100
        batch_max_wait_ms = 50
        """,
        environ=NO_ENV,
    )
    settings = consumer_settings(config)
    assert (settings.bootstrap_servers, settings.topics, settings.group_id) == (
        "h1:9092,h2:9092",
        ("a", "b"),
        "grp",
    )
    assert (settings.session_timeout_ms, settings.heartbeat_interval_ms) == (2000, 200)
    assert settings.max_poll_records == 50
    assert (settings.retry.max_attempts, settings.retry.base_delay, settings.retry.max_delay) == (
        4,
        0.1,
        2.0,
    )
    assert settings.retry_budget.ratio == 0.5
    assert (settings.breaker.failure_threshold, settings.breaker.recovery_timeout) == (9, 3.0)
    assert (settings.dedup.json_field, settings.dedup.capacity) == ("trace", 10)
    assert settings.sync_handler_in_thread is False
    assert (settings.ordering, settings.max_in_flight, settings.buffer_bound) == ("key", 64, 512)
    assert (settings.batch_max_records, settings.batch_max_wait_ms) == (100, 50)
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.sasl_mechanism is None


@pytest.mark.parametrize(
    ("dead_letter", "expected"),
    [
        (DeadLetterConfig(), {"a": "a.dlq", "b": "b.dlq"}),
        (DeadLetterConfig(topic="all.dlq"), {"a": "all.dlq", "b": "all.dlq"}),
        (DeadLetterConfig(enabled=False), {"a": None, "b": None}),
    ],
)
def test_dead_letter_topics(dead_letter: DeadLetterConfig, expected: dict[str, str]) -> None:
    """One `<topic>.dlq` per topic by default, one shared topic when named, none when off."""
    config = parse_config('[kafka]\ntopics = ["a", "b"]\n', environ=NO_ENV)
    settings = consumer_settings(Config(kafka=config.kafka, dead_letter=dead_letter))
    assert {topic: settings.dead_letter_topic_for(topic) for topic in "ab"} == expected


@given(st.integers(1, 500), st.floats(0.01, 1.0))
def test_the_poison_guard_judges_after_twenty_records_or_a_full_window(
    window: int, share: float
) -> None:
    """The window and share are the configured ones; the sample needed is min(20, window)."""
    config = Config(dead_letter=DeadLetterConfig(poison_window=window, poison_max_share=share))
    poison = consumer_settings(config).poison
    assert (poison.window, poison.max_share, poison.min_sample) == (window, share, min(20, window))


def test_event_hubs_profile_and_auth_are_wired_together(config_dir: Path) -> None:
    """Event Hubs' endpoint, SASL_SSL/OAUTHBEARER, its timeouts and the namespace scope."""
    config = _event_hubs(config_dir)
    auth = build_auth(config)
    assert auth is not None
    settings = consumer_settings(config, auth)
    assert settings.bootstrap_servers == "myns.servicebus.windows.net:9093"
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_SSL", "OAUTHBEARER")
    assert settings.session_timeout_ms == 30_000
    assert settings.oauth_token_provider is auth.token_provider
    assert settings.auth_scope == auth.scope == "https://myns.servicebus.windows.net/.default"
    assert auth.provider.cache is auth.cache
    assert auth.provider.method == "token_file"


def test_event_hubs_values_that_differ_from_the_defaults_win(config_dir: Path) -> None:
    """A session timeout set in the file replaces the profile's 30 s."""
    config = _event_hubs(config_dir, kafka_extra="session_timeout_ms = 45000")
    assert consumer_settings(config, build_auth(config)).session_timeout_ms == 45_000


def test_an_explicit_scope_replaces_the_namespace_scope(config_dir: Path) -> None:
    """`auth.scope` is what the refresher and the OAUTHBEARER provider ask for."""
    config = _event_hubs(config_dir, auth_extra='scope = "https://eventhubs.azure.net/.default"')
    auth = build_auth(config)
    assert auth is not None
    assert auth.scope == auth.token_provider.scope == "https://eventhubs.azure.net/.default"
    assert consumer_settings(config, auth).auth_scope == auth.scope


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: None, "does not exist: check the path, and that its writer has run"),
        (Path.mkdir, "cannot be read: it is not a regular file"),
    ],
    ids=["missing", "a directory"],
)
def test_a_token_file_that_cannot_be_read_is_a_config_error(
    tmp_path: Path, make: Callable[[Path], object], problem: str
) -> None:
    """Found when the auth part is built, naming the field and the path, not by the refresher."""
    token = tmp_path / "token.json"
    make(token)
    with pytest.raises(ConfigError) as raised:
        build_auth(_event_hubs(tmp_path))
    assert raised.value.field == "auth.token_file"
    assert str(raised.value) == f"auth.token_file: {token} {problem}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any file: nothing to refuse")
def test_a_token_file_without_read_permission_is_a_config_error(config_dir: Path) -> None:
    """A token file this process may not read names the field and the reason."""
    (config_dir / "token.json").chmod(0o200)
    with pytest.raises(ConfigError, match="cannot be read \\(Permission denied\\)"):
        build_auth(_event_hubs(config_dir))


def test_a_token_file_s_contents_are_left_to_the_refresher(config_dir: Path) -> None:
    """Garbage in a readable token file still builds: its writer may be replacing it now."""
    (config_dir / "token.json").write_text("not a token yet")
    auth = build_auth(_event_hubs(config_dir))
    assert auth is not None
    assert auth.provider.method == "token_file"


def test_no_auth_for_method_none() -> None:
    """`auth.method = "none"` builds no identity, token cache or refresher input."""
    assert build_auth(Config()) is None


def test_a_scope_that_cannot_be_derived_is_a_config_error() -> None:
    """Plain Kafka with OAUTHBEARER and an unusable host, without auth.scope, names the field."""
    config = parse_config(
        """
        [kafka]
        bootstrap_servers = "not_a_host!:9093"
        security_protocol = "SASL_SSL"
        sasl_mechanism = "OAUTHBEARER"
        [auth]
        method = "cli"
        """,
        environ=NO_ENV,
    )
    with pytest.raises(ConfigError, match=r"^auth\.scope: not set, and"):
        build_auth(config)


@pytest.mark.parametrize(
    ("toml", "field", "build"),
    [
        (
            "[retry]\nbase_delay_s = 5.0\nmax_delay_s = 1.0\n",
            "retry.max_delay_s",
            consumer_settings,
        ),
        (
            "[supervisor]\nbackoff_base_s = 5.0\nbackoff_max_s = 1.0\n",
            "supervisor.backoff_max_s",
            lambda config: restart_backoff(config.supervisor),
        ),
    ],
)
def test_a_delay_below_its_base_is_a_config_error(
    toml: str, field: str, build: Callable[[Config], object]
) -> None:
    """A maximum delay below its base delay names the maximum's field."""
    config = parse_config(toml, environ=NO_ENV)
    with pytest.raises(ConfigError) as caught:
        build(config)
    assert caught.value.field == field


def test_restart_backoff_follows_the_supervisor_table() -> None:
    """The supervisor's backoff grows from backoff_base_s to backoff_max_s."""
    config = parse_config("[supervisor]\nbackoff_base_s = 0.25\nbackoff_max_s = 4.0\n", environ={})
    backoff = restart_backoff(config.supervisor)
    assert (backoff.base, backoff.max) == (0.25, 4.0)


def test_log_sinks_are_stdout_plus_what_is_configured(tmp_path: Path) -> None:
    """Stdout always; a file and a Kafka topic when the logging table names them."""
    assert [type(s) for s in log_sinks(Config(), consumer_settings(Config()))] == [StdoutSink]
    config = parse_config(
        f'[logging]\nfile = "{tmp_path / "p.log"}"\nkafka_topic = "logs"\n', environ=NO_ENV
    )
    sinks = log_sinks(config, consumer_settings(config))
    assert [type(s) for s in sinks] == [StdoutSink, FileSink, KafkaSink]
    file_sink, kafka_sink = sinks[1], sinks[2]
    assert isinstance(file_sink, FileSink)
    assert file_sink.path == tmp_path / "p.log"
    assert isinstance(kafka_sink, KafkaSink)
    assert kafka_sink.topic == "logs"


def test_forwarding_uses_the_consumer_connection_with_acks_all() -> None:
    """The forward producer talks to the same brokers, waits for all replicas, names itself."""
    settings = consumer_settings(parse_config('[kafka]\nbootstrap_servers = "b:1"\n', environ={}))
    producer = forward_producer_settings(settings)
    assert (producer["bootstrap_servers"], producer["acks"]) == ("b:1", "all")
    assert producer["client_id"] == "kafka-pipeline-forward"


@given(st.floats(0.01, 3600))
def test_the_stop_budget_fits_the_graceful_deadline(graceful_stop_s: float) -> None:
    """The consumer's and the log shipper's timeouts together stay within the deadline."""
    budget = StopBudget(graceful_stop_s)
    assert budget.consumer + budget.log_shipper < graceful_stop_s
    assert budget.consumer_exit < budget.consumer
