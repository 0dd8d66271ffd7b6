"""[retry_topics]: the table's rules, what check-config says about tier topics, the
startup check that each exists, and readiness unaffected by paused tiers."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from observation_strategies import observations

from actors.consumer.retry_tiers.settings import delay_label, parse_delay
from supervisor.pipeline.config import ConfigError, parse_config
from supervisor.pipeline.health import readiness
from supervisor.pipeline.observation import Observation
from supervisor.pipeline.retry_topics import check_retry_topics_exist, describe
from supervisor.pipeline.settings import consumer_settings
from supervisor.testing import create_topics, unique_name


def config_text(retry: str, topics: str = '["orders"]', bootstrap: str = "127.0.0.1:9092") -> str:
    """A minimal file with a [retry_topics] table."""
    return (
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ntopics = {topics}\n[retry_topics]\n{retry}\n'
    )


def test_delays_become_tier_topics_named_by_the_pattern() -> None:
    """Three delays give three tier topics per consumed topic, named by their delay."""
    config = parse_config(config_text('delays = ["30s", "300s", "1h"]'))
    assert config.retry_topic_names() == ["orders.retry.1h", "orders.retry.30s", "orders.retry.5m"]
    assert config.retry_topics.tier_settings().delays_s == (30, 300, 3600)


@pytest.mark.parametrize(
    ("retry", "problem"),
    [
        ('delays = ["30"]', "retry_topics.delays: '30' is not a duration"),
        ('delays = ["0s"]', "retry_topics.delays: '0s' is outside"),
        ('delays = ["8d"]', "retry_topics.delays: '8d' is outside"),
        ("delays = [" + ", ".join(['"1s"'] * 9) + "]", "retry_topics.delays: 9 tiers"),
        ('delays = ["1s"]\ntopic_pattern = "retry.{delay}"', "retry_topics.topic_pattern"),
        ('delays = ["1s"]\ntopic_pattern = "{topic}.{x}"', "retry_topics.topic_pattern"),
        ('delays = ["1s", "1s"]', "retry_topics.topic_pattern"),
        ('delays = ["1s"]\ntopic_pattern = "{topic}.r{delay}!"', "retry_topics.topic_pattern"),
        ('delays = ["1s"]\nmax_keys_in_retry = 0', "retry_topics.max_keys_in_retry"),
    ],
    ids=[
        "no unit",
        "too short",
        "too long",
        "too many tiers",
        "no topic",
        "unknown placeholder",
        "same name twice",
        "invalid name",
        "no keys",
    ],
)
def test_a_bad_table_is_refused_naming_the_key(retry: str, problem: str) -> None:
    """Each rule of the table is refused with a ConfigError naming its key."""
    with pytest.raises(ConfigError) as caught:
        consumer_settings(parse_config(config_text(retry)))
    assert str(caught.value).startswith(problem)


def test_forwarding_to_a_tier_topic_is_refused_as_a_loop() -> None:
    """A tier topic is consumed, so forwarding to it would feed records back without end."""
    text = config_text('delays = ["5s"]') + '[handler]\ntarget = "forward:orders.retry.5s"\n'
    with pytest.raises(ConfigError, match=r"handler\.target"):
        parse_config(text)


@given(st.integers(1, 604_800))
def test_every_delay_label_reads_back_as_its_delay(seconds: int) -> None:
    """The label a delay gets in topic names parses back to the same number of seconds."""
    assert parse_delay(delay_label(seconds)) == seconds


def test_check_config_names_tier_topics_and_the_event_hubs_limits() -> None:
    """On Event Hubs the output says each tier is an event hub, the namespace limit of
    ten, and that retention must exceed the longest delay."""
    config = parse_config(
        config_text(
            'delays = ["1m", "1h"]',
            bootstrap="ns.servicebus.windows.net:9093",
        )
    )
    lines = describe(consumer_settings(config))
    assert lines[0] == "# retry tier topics (must exist): orders.retry.1h, orders.retry.1m"
    assert "event hub" in lines[1]
    assert "allows 10" in lines[1]
    assert "longest delay (1h)" in lines[1]
    plain = describe(consumer_settings(parse_config(config_text('delays = ["1m"]'))))
    assert len(plain) == 1


@pytest.mark.anyio
async def test_a_missing_tier_topic_is_a_configuration_error_naming_it(
    bootstrap_servers: str,
) -> None:
    """With one of two tier topics missing, the startup check names the missing one."""
    source = unique_name("orders")
    await create_topics(bootstrap_servers, [source, f"{source}.retry.1s"])
    config = parse_config(
        config_text('delays = ["1s", "2s"]', topics=f'["{source}"]', bootstrap=bootstrap_servers)
    )
    with pytest.raises(ConfigError, match=rf"'{source}\.retry\.2s' does not exist"):
        await check_retry_topics_exist(consumer_settings(config))
    await create_topics(bootstrap_servers, [f"{source}.retry.2s"])
    await check_retry_topics_exist(consumer_settings(config))


def test_check_config_exits_2_naming_a_missing_tier_topic(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """The command line refuses a missing tier topic with exit 2 and one line."""
    path = tmp_path / "pipeline.toml"
    source = unique_name("absent")
    path.write_text(
        config_text('delays = ["3s"]', topics=f'["{source}"]', bootstrap=bootstrap_servers)
        + "[health]\nport = 0\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"tier topic '{source}.retry.3s' does not exist" in result.stderr.splitlines()[-1]


@given(observations)
def test_paused_retry_tiers_never_make_the_process_unready(observation: Observation) -> None:
    """Readiness is the same whatever retry tier partitions are paused."""
    consumer = observation.consumer
    paused = dataclasses.replace(consumer, tier_paused=frozenset({("orders.retry.5m", 0)}))
    calm = dataclasses.replace(consumer, tier_paused=frozenset())
    assert readiness(dataclasses.replace(observation, consumer=paused), "kafka_consumer") == (
        readiness(dataclasses.replace(observation, consumer=calm), "kafka_consumer")
    )
