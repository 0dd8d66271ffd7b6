"""End to end against the broker: events with URLs go in, files land under deterministic
names, refused URLs go to the dead-letter topic naming the rule, a dead host pauses the
consumer, and a worker killed with SIGKILL mid-stream loses nothing and duplicates
nothing after a restart."""

from __future__ import annotations

import dataclasses
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import orjson
import pytest
from attachment_server import AttachmentServer
from attachment_testing import TEST_LIMITS, ScriptedResolver, make_policy, new_directory
from attachment_worker import worker_handler, worker_settings
from throwaway_ca import ThrowawayCA

from actors.attachments import AttachmentHandler, Downloader, HostBreakers, LocalDirectoryStore
from actors.consumer import KafkaConsumerActor
from core.resilience import CircuitBreakerConfig
from supervisor.testing import create_topics, produce, read_topic, unique_name

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

WORKER = Path(__file__).resolve().parents[2] / "support" / "attachment_worker.py"


def stored_files(root: Path) -> dict[str, bytes]:
    """Every stored file below `root` (staging excluded) by relative path."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if ".staging" not in path.parts:
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


async def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    """Poll `condition()` until it holds; fail after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await anyio.sleep(0.05)
    pytest.fail(f"condition still false after {seconds}s")


async def test_files_land_and_refused_urls_are_dead_lettered_with_the_rule(
    bootstrap_servers: str, server: AttachmentServer, client_tls: ssl.SSLContext, tmp_path: Path
) -> None:
    """Ten good events store ten files named by their trace ids; a metadata URL and a host
    off the allow-list land on the DLQ with the rule in dlq.error.message."""
    topic = unique_name("docs")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    bodies = {n: os.urandom(20_000) for n in range(10)}
    events = [
        {"trace_id": f"T{n}", "attachment": {"url": server.add_file(f"e{n}.pdf", body)}}
        for n, body in bodies.items()
    ]
    events.insert(3, {"trace_id": "meta", "attachment": {"url": "https://169.254.169.254/x"}})
    events.insert(7, {"trace_id": "evil", "attachment": {"url": "https://evil.example/x"}})
    await produce(bootstrap_servers, topic, [(None, orjson.dumps(e)) for e in events])
    handler = worker_handler(new_directory(tmp_path / "store"), server.port, client_tls)
    actor = KafkaConsumerActor(worker_settings(bootstrap_servers, topic, unique_name("g")), handler)
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(actor.run)
            await wait_for(lambda: actor.stats.handled + actor.stats.dead_lettered >= 12, 30)
            actor.stop()
    finally:
        await handler.aclose()
    assert stored_files(tmp_path / "store") == {
        f"inbox/T{n}/0-e{n}.pdf": body for n, body in bodies.items()
    }
    letters = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=2)
    messages = {
        orjson.loads(letter.value or b"")["trace_id"]: dict(letter.headers) for letter in letters
    }
    assert set(messages) == {"meta", "evil"}
    assert b"forbidden_address" in messages["meta"]["dlq.error.message"]
    assert b"host_not_allowed" in messages["evil"]["dlq.error.message"]
    for headers in messages.values():
        assert headers["dlq.error.category"] == b"permanent"
        assert headers["dlq.error.class"] == b"core.urls.errors.UrlRefusedError"


async def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(
    bootstrap_servers: str,
    served: tuple[AttachmentServer, ThrowawayCA],
    tmp_path: Path,
) -> None:
    """SIGKILL a worker child process after some files landed, start another: every event's
    file is stored exactly once under its name, with the right bytes, no spool left over."""
    server, ca = served
    topic, group = unique_name("docs"), unique_name("g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    count = 150
    bodies = {n: os.urandom(50_000) for n in range(count)}
    events = [
        {"trace_id": f"K{n}", "attachment": {"url": server.add_file(f"k{n}.bin", body)}}
        for n, body in bodies.items()
    ]
    await produce(bootstrap_servers, topic, [(None, orjson.dumps(e)) for e in events])
    store = tmp_path / "store"
    arguments = [bootstrap_servers, topic, group, str(store), str(server.port), str(ca.ca_pem)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def start_worker(log: str) -> subprocess.Popen[bytes]:
        with (tmp_path / log).open("wb") as output:
            return subprocess.Popen(
                [sys.executable, str(WORKER), *arguments],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
            )

    first = start_worker("first.log")
    try:
        await wait_for(lambda: len(stored_files(store)) >= 20 or first.poll() is not None, 60)
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        stored_at_kill = len(stored_files(store))
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert stored_at_kill < count, "the worker finished before it was killed"
    second = start_worker("second.log")
    try:
        await wait_for(lambda: len(stored_files(store)) >= count, 90)
        await anyio.sleep(1.0)  # anything extra the restart would write shows up now
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert stored_files(store) == {f"inbox/K{n}/0-k{n}.bin": body for n, body in bodies.items()}
    assert sorted(os.listdir(store / ".staging")) == []


async def test_a_dead_host_pauses_the_consumer_instead_of_dead_lettering(
    bootstrap_servers: str, server: AttachmentServer, client_tls: ssl.SSLContext, tmp_path: Path
) -> None:
    """While a host cannot be reached its breaker opens and the consumer pauses on the
    refusal: nothing is dead-lettered, and once the host is back every file lands."""
    topic = unique_name("docs")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    server.add_file("late.pdf", b"late but whole")
    url = server.url("files/late.pdf", host="other.files.test")
    await produce(bootstrap_servers, topic, [(None, orjson.dumps({"u": [url]})) for _ in range(3)])
    resolver = ScriptedResolver({})  # other.files.test does not resolve yet: a dead host
    breakers = HostBreakers(CircuitBreakerConfig(failure_threshold=3, recovery_timeout_s=0.5))
    handler = AttachmentHandler(
        downloader=Downloader(
            make_policy(server, resolver), TEST_LIMITS, breakers=breakers, verify=client_tls
        ),
        store=LocalDirectoryStore(new_directory(tmp_path / "store")),
        url_fields=["u"],
    )
    settings = dataclasses.replace(
        worker_settings(bootstrap_servers, topic, unique_name("g")),
        breaker=CircuitBreakerConfig(failure_threshold=1000),  # only the host's breaker acts
    )
    actor = KafkaConsumerActor(settings, handler)
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(actor.run)
            flaky = breakers.for_host("other.files.test")
            await wait_for(lambda: flaky.stats.state_changes >= 3, 20)  # opened, probed, reopened
            await anyio.sleep(1.0)
            refused_while_down = actor.stats.dead_lettered
            stored_while_down = stored_files(tmp_path / "store")
            resolver.answers["other.files.test"] = [["::1"]]  # the host is back
            await wait_for(lambda: len(stored_files(tmp_path / "store")) == 3, 30)
            actor.stop()
    finally:
        await handler.aclose()
    assert refused_while_down == 0
    assert stored_while_down == {}
    assert actor.stats.dead_lettered == 0
    assert set(stored_files(tmp_path / "store").values()) == {b"late but whole"}
