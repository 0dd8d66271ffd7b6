"""From the TOML configuration to what each actor is built with."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.log_shipper import FileSink, KafkaSink, StdoutSink
from core.types import ErrorCategory
from supervisor.pipeline.config import Config, ConfigError, DeadLetterConfig, parse_config
from supervisor.pipeline.settings import (
    StopBudget,
    build_auth,
    build_classifier,
    consumer_settings,
    forward_producer_settings,
    log_sinks,
    restart_backoff,
)

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
    assert (
        settings.retry.max_attempts,
        settings.retry.base_delay_s,
        settings.retry.max_delay_s,
    ) == (
        4,
        0.1,
        2.0,
    )
    assert settings.retry_budget.ratio == 0.5
    assert (settings.breaker.failure_threshold, settings.breaker.recovery_timeout_s) == (9, 3.0)
    assert (settings.dedup.json_field, settings.dedup.capacity) == ("trace", 10)
    assert settings.sync_handler_in_thread is False
    assert (settings.ordering, settings.max_in_flight, settings.buffer_bound()) == ("key", 64, 512)
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


def test_a_token_file_this_process_cannot_read_is_a_config_error(config_dir: Path) -> None:
    """A token file this process may not read names the field and the reason.

    Root reads past any permission bits, so as root the token file is a link to a path
    whose parent is a regular file instead: unreadable for everyone.
    """
    token = config_dir / "token.json"
    if os.geteuid() == 0:
        (config_dir / "plain-file").write_text("")
        token.unlink()
        token.symlink_to(config_dir / "plain-file" / "token.json")
        reason = "Not a directory"
    else:
        token.chmod(0o200)
        reason = "Permission denied"
    with pytest.raises(ConfigError, match=f"cannot be read \\({reason}\\)"):
        build_auth(_event_hubs(config_dir))
    with pytest.raises(OSError):  # and the refusal is real: the file cannot be opened
        token.open("rb").close()


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
    ("toml", "field"),
    [
        ("[retry]\nbase_delay_s = 5.0\nmax_delay_s = 1.0\n", "retry.max_delay_s"),
        ("[supervisor]\nbackoff_base_s = 5.0\nbackoff_max_s = 1.0\n", "supervisor.backoff_max_s"),
    ],
)
def test_a_delay_below_its_base_is_a_config_error(toml: str, field: str) -> None:
    """A maximum delay below its base delay names the maximum's field when the file is read."""
    with pytest.raises(ConfigError) as caught:
        parse_config(toml, environ=NO_ENV)
    assert caught.value.field == field
    assert field.replace("max", "base") in str(caught.value)


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


@given(st.floats(0.1, 3600))
def test_the_stop_budget_fits_the_graceful_deadline(graceful_stop_s: float) -> None:
    """The parts that run one after another (consumer, log shipper, last logs) sum to less
    than the deadline; the consumer's final commit is a part of the consumer's share."""
    budget = StopBudget(graceful_stop_s)
    assert budget.consumer + budget.log_shipper + budget.last_logs < graceful_stop_s
    assert budget.consumer_exit < budget.consumer


@pytest.mark.parametrize(
    ("toml", "field", "fragment"),
    [
        ("[kafka]\ntopics = ['has space']\n", "kafka.topics", "not a valid topic name"),
        ("[kafka]\ntopics = ['..']\n", "kafka.topics", "not allowed"),
        (f"[kafka]\ntopics = ['{'t' * 250}']\n", "kafka.topics", "at most 249"),
        ("[kafka]\ntopics = []\n", "kafka.topics", "at least one"),
        (
            "[dead_letter]\ntopic = '{topic.__class__}'\n",
            "dead_letter.topic",
            "use the placeholder",
        ),
        ("[dead_letter]\ntopic = '{topic!r}.dlq'\n", "dead_letter.topic", "use the placeholder"),
        ("[dead_letter]\ntopic = '{0}.dlq'\n", "dead_letter.topic", "use the placeholder"),
        ("[dead_letter]\ntopic = '{topic'\n", "dead_letter.topic", "use the placeholder"),
        ("[dead_letter]\ntopic = '{topic}/dlq'\n", "dead_letter.topic", "not a valid topic name"),
        ("[kafka]\ntopics=['a','a.dlq']\n", "dead_letter.topic", "also consumed from"),
        ("[kafka]\ntopics=['a']\n[dead_letter]\ntopic='a'\n", "dead_letter.topic", "also consumed"),
        ("[kafka]\nbootstrap_servers = 'host'\n", "kafka.bootstrap_servers", "not host:port"),
        ("[kafka]\nbootstrap_servers = 'h:1,'\n", "kafka.bootstrap_servers", "not host:port"),
        ("[kafka]\nbootstrap_servers = '::1:9092'\n", "kafka.bootstrap_servers", "[address]"),
        ("[kafka]\nbootstrap_servers = 'h:0'\n", "kafka.bootstrap_servers", "1..65535"),
        ("[kafka]\nbootstrap_servers = '[1.2.3.4]:1'\n", "kafka.bootstrap_servers", "[address]"),
        ("[kafka]\nbootstrap_servers = ' '\n", "kafka.bootstrap_servers", "must not be empty"),
        ("[kafka]\nheartbeat_interval_ms = 20000\n", "kafka.heartbeat_interval_ms", "below"),
        ("[kafka]\ngroup_id = ''\n", "kafka.group_id", "must not be empty"),
        (
            "[kafka]\nsecurity_protocol='SASL_SSL'\nsasl_mechanism='PLAIN'\nsasl_username='u'\n",
            "kafka.sasl_password",
            "KAFKA_PIPELINE_KAFKA__SASL_PASSWORD",
        ),
    ],
)
def test_a_kafka_rule_broken_names_the_configuration_key(
    toml: str, field: str, fragment: str
) -> None:
    """The consumer's settings check the Kafka rules once; the error names the TOML key."""
    config = parse_config(toml, environ=NO_ENV)
    with pytest.raises(ConfigError) as caught:
        consumer_settings(config)
    assert caught.value.field == field
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "servers", ["127.0.0.1:9092", "a:1,b.example:65535", "[::1]:9092", " h1:1 , [fe80::1%eth0]:2 "]
)
def test_bootstrap_servers_in_every_valid_form_are_taken(servers: str) -> None:
    """host:port lists, with IPv6 addresses in brackets, pass as written."""
    config = parse_config(f"[kafka]\nbootstrap_servers = '{servers}'\n", environ=NO_ENV)
    assert consumer_settings(config).bootstrap_servers == servers


@given(st.text(alphabet="abcXYZ019._-{}!/ ", max_size=20))
def test_a_dead_letter_pattern_is_refused_or_gives_valid_unconsumed_topics(pattern: str) -> None:
    """Any pattern either passes, and then each topic's dead-letter name is a valid topic
    name that is not consumed, or is refused naming dead_letter.topic."""
    refused: ConfigError | None = None
    try:
        config = parse_config(
            "[kafka]\ntopics=['a', 'b.c']\n",
            environ={"KAFKA_PIPELINE_DEAD_LETTER__TOPIC": pattern},
        )
        settings = consumer_settings(config)
    except ConfigError as error:
        refused = error
    if refused is not None:
        assert refused.field == "dead_letter.topic"
        return
    for topic in config.kafka.topics:
        name = settings.dead_letter_topic_for(topic)
        assert name is not None
        assert re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", name)
        assert name not in (".", "..")
        assert name not in config.kafka.topics


def timeouts_are_permanent(exc: BaseException) -> ErrorCategory | None:
    """A domain classifier for the test below: timeouts never succeed in this domain."""
    return ErrorCategory.PERMANENT if isinstance(exc, TimeoutError) else None


def test_a_domain_classifier_is_asked_before_the_built_in_rules() -> None:
    """`handler.classifier` names a function the consumer, its breaker and the supervisor
    ask first; where it has no answer, the built-in rules decide."""
    config = parse_config(
        '[handler]\nclassifier = "test_pipeline_settings:timeouts_are_permanent"\n', environ={}
    )
    classifier = build_classifier(config)
    assert classifier.classify(TimeoutError()) is ErrorCategory.PERMANENT
    assert classifier.classify(ConnectionError()) is ErrorCategory.TRANSIENT
    assert build_classifier(parse_config("", environ={})).classify(TimeoutError()) is (
        ErrorCategory.TRANSIENT
    )


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("no_such_module_here:classify", "cannot import"),
        ("core.errors:no_such_name", "cannot import"),
        ("core.errors", "expected 'package.module:object'"),
        ("core.errors:__doc__", "neither a function"),
    ],
)
def test_a_classifier_that_cannot_be_used_is_a_configuration_error(
    target: str, problem: str
) -> None:
    """An unimportable or unusable classifier is refused naming handler.classifier."""
    config = parse_config(f'[handler]\nclassifier = "{target}"\n', environ={})
    with pytest.raises(ConfigError, match=rf"^handler\.classifier: .*{problem}"):
        build_classifier(config)
