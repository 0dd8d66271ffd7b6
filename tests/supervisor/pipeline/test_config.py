"""Configuration: TOML and environment into typed objects, with one clear error per mistake."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigurationError, classify_exception
from core.logging import forget_secrets, redact_secrets
from core.types import ErrorCategory
from supervisor.pipeline.config import (
    Config,
    ConfigError,
    file_mode_bits,
    load_config,
    parse_config,
    register_secrets,
    render_config,
)
from supervisor.pipeline.config_loader import Secret
from supervisor.pipeline.config_ranges import range_of
from supervisor.pipeline.settings import consumer_settings

NO_ENV: dict[str, str] = {}
SERVICE_PRINCIPAL = (
    "[kafka]\nsasl_mechanism='OAUTHBEARER'\n[auth]\nmethod='secret'\ntenant_id='t'\nclient_id='c'\n"
)


def test_empty_file_gives_the_documented_defaults() -> None:
    """An empty file yields exactly the defaults of every table."""
    assert parse_config("", environ=NO_ENV) == Config()


def test_values_from_the_file_replace_defaults() -> None:
    """Keys in a table override the defaults of that table only."""
    config = parse_config(
        '[kafka]\nbootstrap_servers = "h:9093"\ntopics = ["a", "b"]\n[retry]\nmax_attempts = 7\n',
        environ=NO_ENV,
    )
    assert config.kafka.bootstrap_servers == "h:9093"
    assert config.kafka.topics == ("a", "b")
    assert config.retry.max_attempts == 7
    assert config.kafka.group_id == Config().kafka.group_id


def test_environment_overrides_the_file() -> None:
    """KAFKA_PIPELINE_SECTION__FIELD wins over the file and is parsed to the field's type."""
    env = {
        "KAFKA_PIPELINE_KAFKA__BOOTSTRAP_SERVERS": "env:1",
        "KAFKA_PIPELINE_KAFKA__TOPICS": "x, y",
        "KAFKA_PIPELINE_RETRY__MAX_ATTEMPTS": "9",
        "KAFKA_PIPELINE_DEDUP__ENABLED": "false",
        "KAFKA_PIPELINE_BREAKER__RECOVERY_TIMEOUT_S": "2.5",
    }
    config = parse_config('[kafka]\nbootstrap_servers = "file:1"\n', environ=env)
    assert config.kafka.bootstrap_servers == "env:1"
    assert config.kafka.topics == ("x", "y")
    assert config.retry.max_attempts == 9
    assert config.dedup.enabled is False
    assert config.breaker.recovery_timeout_s == 2.5


@pytest.mark.parametrize(
    ("toml", "field", "fragment"),
    [
        ("[kafka]\nbootstrap = 'x'\n", "kafka.bootstrap", "unknown key"),
        ("[nonsense]\nx = 1\n", "nonsense", "unknown key"),
        (
            "[kafka]\nsession_timeout_ms = 'ten'\n",
            "kafka.session_timeout_ms",
            "expected an integer",
        ),
        ("[kafka]\ntopics = 'one'\n", "kafka.topics", "expected a list"),
        ("[dedup]\nenabled = 1\n", "dedup.enabled", "expected true or false"),
        ("[kafka]\nsecurity_protocol = 'TLS'\n", "kafka.security_protocol", "allowed:"),
        ("[retry]\nmax_attempts = 0\n", "retry.max_attempts", "allowed: 1..100"),
        ("[dead_letter]\npoison_max_share = 1.5\n", "dead_letter.poison_max_share", "(0, 1]"),
        ("[health]\nport = 70000\n", "health.port", "0..65_535"),
        ("[health]\nhost = ' '\n", "health.host", "must not be empty"),
        ("[handler]\ntarget = 'nomodule'\n", "handler.target", "package.module:function"),
        ("kafka = 3\n", "kafka", "expected a table"),
        ("[kafka]\nsession_timeout_ms = 2147483648\n", "kafka.session_timeout_ms", "3_600_000"),
        ("[kafka]\ncommit_interval_s = 1e308\n", "kafka.commit_interval_s", "0.01..600 s"),
        ("[logging]\nflush_interval_s = inf\n", "logging.flush_interval_s", "got inf"),
        ("[supervisor]\nperiod_s = nan\n", "supervisor.period_s", "got nan"),
        ("[supervisor]\nbackoff_base_s = 5\nbackoff_max_s = 1\n", "supervisor.backoff_max_s", ">="),
        ("[retry]\nbase_delay_s = -inf\n", "retry.base_delay_s", "0..3_600 s"),
        ("[breaker]\nrecovery_timeout_s = inf\n", "breaker.recovery_timeout_s", "(0, 3_600]"),
        ("[handler]\ntarget = 'forward:bad topic'\n", "handler.target", "not a valid topic"),
        ("[logging]\nkafka_topic = '..'\n", "logging.kafka_topic", "not allowed"),
    ],
)
def test_each_mistake_names_its_field_and_what_is_allowed(
    toml: str, field: str, fragment: str
) -> None:
    """A wrong key, type or value raises one ConfigError naming the field and the rule."""
    with pytest.raises(ConfigError) as caught:
        parse_config(toml, environ=NO_ENV)
    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_invalid_toml_is_a_config_error() -> None:
    """A syntax error in the file is reported as a config error, not a traceback."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[kafka\n", environ=NO_ENV)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    """Loading a file that does not exist names the path."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="file not found"):
        load_config(missing, environ=NO_ENV)


def test_config_errors_are_permanent() -> None:
    """A configuration error is PERMANENT: no restart can fix it."""
    error = ConfigError("x", "bad")
    assert isinstance(error, ConfigurationError)
    assert classify_exception(error) is ErrorCategory.PERMANENT


def test_secrets_in_the_file_are_refused() -> None:
    """A secret written into the TOML is rejected with the way to pass it instead."""
    toml = "[auth]\nmethod='secret'\ntenant_id='t'\nclient_id='c'\nclient_secret='hunter2'\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(toml, environ=NO_ENV)
    assert caught.value.field == "auth.client_secret"
    assert "KAFKA_PIPELINE_AUTH__CLIENT_SECRET" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_missing_secret_is_named() -> None:
    """The service-principal method without a secret says which variable to set."""
    toml = "[auth]\nmethod='secret'\ntenant_id='t'\nclient_id='c'\n"
    with pytest.raises(ConfigError, match="AZURE_CLIENT_SECRET") as caught:
        parse_config(toml, environ=NO_ENV)
    assert caught.value.field == "auth.client_secret"


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    """A secret is read from AZURE_CLIENT_SECRET, a KAFKA_PIPELINE_ variable, or a *_file."""
    base = SERVICE_PRINCIPAL
    from_azure = parse_config(base, environ={"AZURE_CLIENT_SECRET": "s1"})
    assert from_azure.auth.client_secret == Secret("s1")
    from_ours = parse_config(base, environ={"KAFKA_PIPELINE_AUTH__CLIENT_SECRET": "s2"})
    assert from_ours.auth.client_secret == Secret("s2")
    (tmp_path / "secret.txt").write_text("s3\n")
    (tmp_path / "c.toml").write_text(base + "client_secret_file = 'secret.txt'\n")
    from_file = load_config(tmp_path / "c.toml", environ=NO_ENV)
    assert from_file.auth.client_secret is not None
    assert from_file.auth.client_secret.reveal() == "s3"


def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    """A secret file that cannot be read is a config error naming the *_file key."""
    toml = "[kafka]\nsasl_mechanism='PLAIN'\nsasl_username='u'\nsasl_password_file='gone'\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(toml, environ=NO_ENV, base_dir=tmp_path)
    assert caught.value.field == "kafka.sasl_password_file"


def test_eventhubs_profile_needs_namespace_and_azure_auth() -> None:
    """The Event Hubs profile requires a namespace and an Azure AD method."""
    with pytest.raises(ConfigError, match=r"kafka\.eventhubs_namespace"):
        parse_config("[kafka]\nprofile='eventhubs'\n", environ=NO_ENV)
    with pytest.raises(ConfigError) as caught:
        parse_config("[kafka]\nprofile='eventhubs'\neventhubs_namespace='ns'\n", environ=NO_ENV)
    assert caught.value.field == "auth.method"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """A relative path in the file resolves against the file's directory, not the cwd."""
    (tmp_path / "c.toml").write_text("[logging]\nfile = 'logs/out.jsonl'\n")
    config = load_config(tmp_path / "c.toml", environ=NO_ENV)
    assert config.logging.file == tmp_path / "logs" / "out.jsonl"


def test_an_empty_dead_letter_topic_is_refused() -> None:
    """An empty dead_letter.topic is a config error that says how to turn dead-lettering off."""
    with pytest.raises(ConfigError, match=r"dead_letter\.topic.*enabled = false"):
        parse_config("[dead_letter]\ntopic = ''\n", environ=NO_ENV)


def test_rendered_config_parses_back_to_the_same_values() -> None:
    """check-config's output is valid TOML describing the same configuration."""
    config = parse_config("[kafka]\ntopics=['a']\n[retry]\nmax_attempts=4\n", environ=NO_ENV)
    rendered = render_config(config)
    again = parse_config(rendered, environ=NO_ENV)
    assert dataclasses.asdict(again) == dataclasses.asdict(config)


@given(
    # a tilde never occurs in the rendered config, so any occurrence of the secret is a leak
    secret=st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._-", min_size=8
    ).map(lambda text: f"~{text}")
)
def test_rendered_config_never_shows_a_secret(secret: str) -> None:
    """No secret value appears in check-config's output or in the config's repr."""
    config = parse_config(SERVICE_PRINCIPAL, environ={"AZURE_CLIENT_SECRET": secret})
    assert config.auth.client_secret == Secret(secret)
    assert secret not in render_config(config).replace('"***"', "")
    assert secret not in repr(config).replace("Secret('***')", "")


def test_the_delta_sink_is_configured_by_its_own_table(tmp_path: Path) -> None:
    """`handler.target = "delta"` reads `[delta]`, whose keys the sink itself validates."""
    text = f'[handler]\ntarget = "delta"\n[delta]\ntable = "{tmp_path / "t"}"\nvalue = "raw"\n'
    config = parse_config(text, environ={})
    assert config.delta == {"table": str(tmp_path / "t"), "value": "raw"}
    assert '[delta]\ntable = "' in render_config(config)


def test_a_bad_delta_key_is_named() -> None:
    """An unknown or invalid key of `[delta]` is a ConfigError-class error naming it."""
    with pytest.raises(ConfigurationError, match=r"delta\.compression"):
        parse_config(
            '[handler]\ntarget = "delta"\n[delta]\ntable = "t"\ncompression = 1\n', environ={}
        )
    with pytest.raises(ConfigurationError, match=r"delta\.value"):
        parse_config(
            '[handler]\ntarget = "delta"\n[delta]\ntable = "t"\nvalue = "csv"\n', environ={}
        )


def test_a_sink_table_for_another_target_is_refused() -> None:
    """A `[delta]` table while the handler is something else is a mistake, not ignored."""
    with pytest.raises(ConfigError, match=r"^delta: is set, but handler.target is 'print'"):
        parse_config('[handler]\ntarget = "print"\n[delta]\ntable = "t"\n', environ={})


def test_configured_secrets_are_redacted_by_value_once_registered() -> None:
    """After register_secrets, a configured secret quoted in any text is redacted."""
    secret = "s3cr3t-from-the-env"
    config = parse_config(
        '[kafka]\nsasl_mechanism = "PLAIN"\nsasl_username = "u"\n',
        environ={"KAFKA_PIPELINE_KAFKA__SASL_PASSWORD": secret},
    )
    try:
        register_secrets(config)
        assert secret not in redact_secrets(f"broker said: bad password {secret!r} for u")
    finally:
        forget_secrets()


@given(st.integers(min_value=0, max_value=0o777))
def test_file_modes_are_octal_permissions(bits: int) -> None:
    """Any permission mode written in octal is read back as those bits."""
    config = parse_config(f'[handler]\nfile_mode = "{bits:04o}"\n', environ={})
    assert file_mode_bits("handler.file_mode", config.handler.file_mode) == bits


@pytest.mark.parametrize("text", ["0800", "1000", "rw-------", "", "-1"])
def test_a_file_mode_that_is_not_octal_permissions_is_refused(text: str) -> None:
    """A mode outside 0000-0777 or not octal names the key."""
    with pytest.raises(ConfigError, match=r"^logging\.file_mode: got"):
        parse_config(f'[logging]\nfile_mode = "{text}"\n', environ={})


def _ranged_keys() -> list[tuple[str, str, type]]:
    """(table, key, int or float) of every number the configuration reads."""
    keys = []
    for table in dataclasses.fields(Config):
        defaults = table.default_factory()  # type: ignore[misc]
        if not dataclasses.is_dataclass(defaults):
            continue  # a sink's own table: its settings class checks its numbers
        for item in dataclasses.fields(defaults):
            if range_of(item) is not None:
                keys.append((table.name, item.name, int if item.type == "int" else float))
    return keys


RANGED_KEYS = _ranged_keys()
ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 1e308, -0.0, 5e-324]),
)


def _toml_number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def test_every_numeric_key_has_a_finite_range() -> None:
    """Each number of the schema declares a range whose both ends are finite."""
    assert len(RANGED_KEYS) >= 25
    for table in dataclasses.fields(Config):
        defaults = table.default_factory()  # type: ignore[misc]
        if not dataclasses.is_dataclass(defaults):
            continue  # a sink's own table: its settings class checks its numbers
        for item in dataclasses.fields(defaults):
            allowed = range_of(item)
            if item.type in ("int", "float"):
                assert allowed is not None, f"{table.name}.{item.name} has no range"
                assert math.isfinite(allowed.low)
                assert math.isfinite(allowed.high)


@settings(max_examples=600)
@given(key=st.sampled_from(RANGED_KEYS), value=ANY_NUMBER, from_env=st.booleans())
def test_any_number_for_any_key_is_accepted_in_range_or_refused_naming_the_key(
    key: tuple[str, str, type], value: float, from_env: bool
) -> None:
    """NaN, infinities, huge, tiny and negative numbers, from the file or the environment:
    either the key takes the value within its range (and the consumer's settings build),
    or one ConfigError names the key (a rule between two keys names both)."""
    table, name, kind = key
    if from_env:
        env = {f"KAFKA_PIPELINE_{table.upper()}__{name.upper()}": str(value)}
        text = ""
    else:
        env = {}
        text = f"[{table}]\n{name} = {_toml_number(value)}\n"
    refused: ConfigError | None = None
    try:
        config = parse_config(text, environ=env)
        consumer_settings(config)
    except ConfigError as error:
        refused = error
    if refused is not None:
        assert name in str(refused)
        assert refused.field.split(".")[0] == table
        return
    taken = getattr(getattr(config, table), name)
    item = next(f for f in dataclasses.fields(getattr(config, table)) if f.name == name)
    allowed = range_of(item)
    assert allowed is not None
    assert allowed.admits(taken)
    assert taken == value
    assert isinstance(taken, kind)


def test_an_override_that_matches_no_key_is_refused_with_the_closest_name() -> None:
    """One underscore short (or any other near miss) names the variable and the fix."""
    with pytest.raises(ConfigError) as caught:
        parse_config("", environ={"KAFKA_PIPELINE_KAFKA_TOPICS": "a"})
    assert caught.value.field == "KAFKA_PIPELINE_KAFKA_TOPICS"
    assert "did you mean KAFKA_PIPELINE_KAFKA__TOPICS?" in str(caught.value)
    with pytest.raises(ConfigError, match=r"^KAFKA_PIPELINE_NOTHING_LIKE_IT: matches no setting"):
        parse_config("", environ={"KAFKA_PIPELINE_NOTHING_LIKE_IT": "1"})


def test_overrides_of_secret_files_are_keys_too(tmp_path: Path) -> None:
    """`<secret>_file` is a key of its table, so its override is accepted."""
    (tmp_path / "password").write_text("pw\n")
    config = parse_config(
        "[kafka]\nsecurity_protocol='SASL_PLAINTEXT'\nsasl_mechanism='PLAIN'\nsasl_username='u'\n",
        environ={"KAFKA_PIPELINE_KAFKA__SASL_PASSWORD_FILE": str(tmp_path / "password")},
    )
    assert config.kafka.sasl_password == Secret("pw")


@given(text=st.text())
def test_rendered_strings_are_escaped_and_parse_back(text: str) -> None:
    """A group id with newlines, NUL or quotes prints as one TOML line that reads back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # refused when read: see test_text_that_is_not_utf8_is_refused
    config = Config(kafka=dataclasses.replace(Config().kafka, group_id=text))
    rendered = render_config(config)
    [line] = [line for line in rendered.splitlines() if line.startswith("group_id = ")]
    assert line.isprintable()
    assert tomllib.loads(line)["group_id"] == text
    assert rendered.count("\n") == render_config(Config()).count("\n")


def test_text_that_is_not_utf8_is_refused() -> None:
    """An environment value with undecodable bytes (lone surrogates) names the key."""
    with pytest.raises(ConfigError, match=r"^kafka\.group_id: .*not valid UTF-8"):
        parse_config("", environ={"KAFKA_PIPELINE_KAFKA__GROUP_ID": "g\udcff"})


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[kafka]\ntopics=['a','b']\n[handler]\ntarget='forward:b'\n", "handler.target"),
        ("[kafka]\ntopics=['a']\n[logging]\nkafka_topic='a'\n", "logging.kafka_topic"),
    ],
)
def test_writing_to_a_consumed_topic_is_refused_as_a_loop(toml: str, field: str) -> None:
    """forward: or the log topic naming a consumed topic would feed the pipeline itself."""
    with pytest.raises(ConfigError) as caught:
        parse_config(toml, environ=NO_ENV)
    assert caught.value.field == field
    assert "kafka.topics" in str(caught.value)
