"""The wired actor tree, in process: its shape, and a run against the real broker over HTTP."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer import BatchHandler
from actors.log_shipper import FileSink
from actors.sinks.delta import DeltaBatchHandler
from supervisor import Restart
from supervisor.pipeline.config import Config, ConfigError, SupervisionConfig, parse_config
from supervisor.pipeline.metrics import METRICS
from supervisor.pipeline.settings import StopBudget
from supervisor.pipeline.wiring import Pipeline
from supervisor.testing import committed_offsets, create_topics, produce, unique_name
from supervisor.testing.embedded_broker import free_port

pytestmark = pytest.mark.anyio

RECORDS = 30


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def _http(port: int, path: str) -> tuple[int, str]:
    return await anyio.to_thread.run_sync(_get, port, path)


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` until it holds (bound it with anyio.fail_after)."""
    while True:
        if await check():
            return
        await anyio.sleep(0.1)


def _samples(exposition: str) -> dict[str, float]:
    """Unlabelled and labelled samples as {'name{labels}': value} (labels as written)."""
    found = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_the_tree_without_auth_has_four_always_restarted_children() -> None:
    """Log shipper first, consumer last, no refresher, all ALWAYS, timeouts from the budget."""
    pipeline = Pipeline(Config())
    specs = pipeline.root.children
    assert [spec.name for spec in specs] == [
        "log_shipper",
        "health_server",
        "breaker_monitor",
        "kafka_consumer",
    ]
    assert {spec.restart for spec in specs} == {Restart.ALWAYS}
    budget = StopBudget(Config().supervisor.graceful_stop_s)
    assert specs[0].shutdown_timeout == budget.log_shipper
    assert specs[-1].shutdown_timeout == budget.consumer
    assert "ONE_FOR_ONE" in repr(pipeline.root)


@given(st.floats(0.1, 3600))
def test_the_children_s_stop_timeouts_and_the_last_logs_fit_the_graceful_deadline(
    graceful_stop_s: float,
) -> None:
    """Children stop one after another: all their timeouts plus the last logs' share stay
    within supervisor.graceful_stop_s (the process's own deadline)."""
    config = Config(supervisor=SupervisionConfig(graceful_stop_s=graceful_stop_s))
    pipeline = Pipeline(config)
    timeouts = [spec.shutdown_timeout for spec in pipeline.root.children]
    assert sum(timeouts) + StopBudget(graceful_stop_s).last_logs < graceful_stop_s


def test_the_tree_with_auth_runs_a_token_refresher_before_the_consumer(tmp_path: Path) -> None:
    """With an Azure AD method the refresher starts third; a disabled endpoint is left out."""
    (tmp_path / "token.json").write_text("written by a sidecar")
    config = parse_config(
        f"""
        [kafka]
        profile = "eventhubs"
        eventhubs_namespace = "myns"
        [auth]
        method = "token_file"
        token_file = "{tmp_path / "token.json"}"
        [health]
        enabled = false
        """,
        environ={},
    )
    pipeline = Pipeline(config)
    assert [spec.name for spec in pipeline.root.children] == [
        "log_shipper",
        "token_refresher",
        "breaker_monitor",
        "kafka_consumer",
    ]
    assert pipeline.health_port is None


async def test_a_pipeline_stopped_before_it_runs_returns_at_once() -> None:
    """stop() before run() makes run() return without starting any actor."""
    pipeline = Pipeline(Config())
    pipeline.stop()
    with anyio.fail_after(1):
        await pipeline.run()
    assert all(child.starts == 0 for child in pipeline.observe().actors.values())


async def test_a_taken_health_port_fails_run_before_any_actor_starts() -> None:
    """run() raises ConfigError naming health.port; no actor started, no log handler left."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        pipeline = Pipeline(parse_config(f"[health]\nport = {port}\n", environ={}))
        handlers_before = list(logging.getLogger().handlers)
        with pytest.raises(
            ConfigError, match=re.escape(f"health.port: {port} on 127.0.0.1 cannot be bound")
        ):
            await pipeline.run()
    assert all(child.starts == 0 for child in pipeline.observe().actors.values())
    assert logging.getLogger().handlers == handlers_before


async def test_token_freshness_is_read_from_the_refresher(tmp_path: Path) -> None:
    """A refreshed token makes /readyz stop naming the scope and /metrics show its expiry."""
    token_file = tmp_path / "token.json"
    token_file.write_text(
        json.dumps({"access_token": "t0k3n", "expires_on": int(time.time()) + 3600})
    )
    config = parse_config(
        f"""
        [kafka]
        profile = "eventhubs"
        eventhubs_namespace = "myns"
        [auth]
        method = "token_file"
        token_file = "{token_file}"
        """,
        environ={},
    )
    pipeline = Pipeline(config)
    scope = "https://myns.servicebus.windows.net/.default"
    assert f"no fresh token for {scope}" in pipeline.ready().reasons
    refresher = pipeline.token_refresher
    assert refresher is not None
    async with anyio.create_task_group() as group:
        with anyio.fail_after(10):
            await group.start(refresher.run)
        assert not any("token" in reason for reason in pipeline.ready().reasons)
        samples = _samples(pipeline.metrics.render()[0].decode())
        expiry = samples[f'kafka_pipeline_token_seconds_to_expiry{{scope="{scope}"}}']
        assert 3500 < expiry <= 3600
        group.cancel_scope.cancel()


async def test_a_running_pipeline_is_probed_scraped_and_stopped(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """Records are handled, the endpoints answer over HTTP, and a stop commits everything."""
    topic, group = unique_name("app"), unique_name("app-group")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=2)
    await produce(
        bootstrap_servers,
        topic,
        [(b"k%d" % i, b"v%d" % i, [("trace_id", b"t%d" % i)]) for i in range(RECORDS)],
    )
    port = free_port()
    config = parse_config(
        f"""
        [kafka]
        bootstrap_servers = "{bootstrap_servers}"
        topics = ["{topic}"]
        group_id = "{group}"
        session_timeout_ms = 2000
        heartbeat_interval_ms = 200
        [handler]
        target = "jsonl:handled.jsonl"
        [health]
        port = {port}
        """,
        environ={},
    )
    pipeline = Pipeline(config, log_sinks=[FileSink(tmp_path / "p.log")], base_dir=tmp_path)
    output = tmp_path / "handled.jsonl"
    async with anyio.create_task_group() as tasks:
        await tasks.start(pipeline.run)
        assert (await _http(port, "/healthz"))[0] == 200

        async def handled_all() -> bool:
            ready = (await _http(port, "/readyz"))[0] == 200
            return ready and output.exists() and len(output.read_bytes().splitlines()) == RECORDS

        with anyio.fail_after(20):
            await _until(handled_all)
        status, body = await _http(port, "/readyz")
        assert (status, body.splitlines()[0]) == (200, "ok")
        status, exposition = await _http(port, "/metrics")
        declared = {
            line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE")
        }
        assert declared == {spec.name for spec in METRICS}
        samples = _samples(exposition)
        assert samples["kafka_pipeline_records_handled_total"] == RECORDS
        assert samples["kafka_pipeline_partitions_assigned"] == 2
        assert samples['kafka_pipeline_actor_running{actor="kafka_consumer"}'] == 1
        pipeline.stop()
    assert not pipeline.live().ok
    offsets = await committed_offsets(bootstrap_servers, group, topic, 2)
    assert sum(offset or 0 for offset in offsets.values()) == RECORDS
    assert len(output.read_bytes().splitlines()) == RECORDS


def test_the_delta_target_is_a_batch_handler_whose_table_breaker_is_watched(
    tmp_path: Path,
) -> None:
    """`handler.target = "delta"` gives the consumer the Delta batch handler (no
    before_commit), and the breaker monitor watches the table's breaker."""
    config = parse_config(
        f'[handler]\ntarget = "delta"\n[delta]\ntable = "{tmp_path / "t"}"\n', environ={}
    )
    pipeline = Pipeline(config)
    assert isinstance(pipeline.handler, DeltaBatchHandler)
    assert isinstance(pipeline.handler, BatchHandler)
    assert not hasattr(pipeline.handler, "before_commit")
    assert f"delta:{tmp_path / 't'}" in pipeline.breaker_monitor.stats()
