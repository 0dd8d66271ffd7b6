"""The handler's `before_commit` hook against a real broker: awaited before every commit."""

from __future__ import annotations

import threading

import anyio
import pytest
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import KafkaConsumerActor, Record
from actors.consumer.handler_calls import HandlerRunner
from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio


class SyncingHandler:
    """Counts records handled and, at each `before_commit`, how many were handled by then."""

    def __init__(self, *, failing: BaseException | None = None) -> None:
        self.handled = 0
        self.synced_at: list[int] = []
        self.failing = failing
        self.failures = 0
        self.sync_threads: set[str] = set()

    async def __call__(self, record: Record) -> None:
        self.handled += 1

    def before_commit(self) -> None:
        self.sync_threads.add(threading.current_thread().name)
        if self.failing is not None:
            self.failures += 1
            raise self.failing
        self.synced_at.append(self.handled)


async def test_every_commit_follows_a_before_commit_that_saw_its_records(
    bootstrap_servers: str,
) -> None:
    """The hook runs before each commit, after the records that commit covers were handled,
    and a synchronous hook runs in a worker thread, not on the event loop."""
    topic = unique_name("synced")
    await create_topics(bootstrap_servers, [topic], partitions=1)
    count = 500
    await produce(bootstrap_servers, topic, [(None, b"v%d" % i) for i in range(count)])
    handler = SyncingHandler()
    config = consumer_settings(bootstrap_servers, topic)
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(lambda: actor.stats.committed.get((topic, 0)) == count)
    assert handler.synced_at, "no before_commit call"
    assert handler.synced_at[-1] == count
    assert len(handler.synced_at) == actor.stats.commits
    assert threading.main_thread().name not in handler.sync_threads


async def test_a_transient_before_commit_failure_holds_the_commit_back_until_it_succeeds(
    bootstrap_servers: str,
) -> None:
    """While the hook raises a TRANSIENT error nothing is committed, each failed attempt is
    counted, and the consumer keeps trying; the next successful call lets the commit
    through with everything handled."""
    topic = unique_name("unsynced")
    await create_topics(bootstrap_servers, [topic], partitions=1)
    await produce(bootstrap_servers, topic, [(None, b"v%d" % i) for i in range(50)])
    handler = SyncingHandler(failing=TimeoutError("the disk is slow"))
    config = consumer_settings(bootstrap_servers, topic)
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(lambda: handler.handled == 50 and handler.failures >= 3)
        assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: None}
        assert actor.stats.commits == 0
        assert actor.stats.commit_failures >= handler.failures - 1
        handler.failing = None
        await wait_until(lambda: actor.stats.committed.get((topic, 0)) == 50)
    assert handler.synced_at[0] == 50
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 50}


async def test_any_other_before_commit_failure_stops_the_consumer_uncommitted(
    bootstrap_servers: str,
) -> None:
    """A hook failing with anything but a TRANSIENT error ends the actor with that error
    (for the supervisor to judge) and nothing is committed, not even on the way out."""
    topic = unique_name("disk-full")
    await create_topics(bootstrap_servers, [topic], partitions=1)
    await produce(bootstrap_servers, topic, [(None, b"v%d" % i) for i in range(20)])
    handler = SyncingHandler(failing=OSError(28, "No space left on device"))
    config = consumer_settings(bootstrap_servers, topic)
    actor = KafkaConsumerActor(config, handler)
    with pytest.raises(OSError, match="No space left"):
        await actor.run()
    assert handler.handled == 20
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: None}


def test_a_before_commit_attribute_that_is_not_callable_is_refused() -> None:
    """A handler whose `before_commit` cannot be called is refused when the consumer is built."""

    class Confused:
        before_commit = "fsync"

        def __call__(self, record: Record) -> None:
            return None

    with pytest.raises(TypeError, match="before_commit must be callable"):
        HandlerRunner(Confused(), in_thread=True)


class SlowSync:
    """A handler whose `before_commit` takes a while and notes how many ran at once."""

    def __init__(self) -> None:
        self.handled = 0
        self.running = 0
        self.most_at_once = 0
        self.calls = 0

    async def __call__(self, record: Record) -> None:
        await anyio.sleep(0.005)  # records keep flowing, so every commit has work to cover
        self.handled += 1

    async def before_commit(self) -> None:
        self.running += 1
        self.calls += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await anyio.sleep(0.3)
        finally:
            self.running -= 1


async def test_commits_take_turns_so_before_commit_never_runs_twice_at_once(
    bootstrap_servers: str,
) -> None:
    """While a periodic commit waits in a slow `before_commit`, a second member joining
    makes the first revoke and commit: that commit waits its turn instead of overlapping."""
    topic = unique_name("turns")
    await create_topics(bootstrap_servers, [topic], partitions=2)
    await produce(bootstrap_servers, topic, [(None, b"v%d" % i) for i in range(2000)])
    first_handler, second_handler = SlowSync(), SlowSync()
    config = consumer_settings(bootstrap_servers, topic)
    first = KafkaConsumerActor(config, first_handler)
    second = KafkaConsumerActor(config, second_handler)
    async with running(first):
        await wait_until(lambda: first_handler.calls > 0)
        async with running(second):
            await wait_until(lambda: len(second.stats.assigned) == 1, seconds=20)
            await wait_until(lambda: second_handler.calls > 0)
    assert first.stats.commits >= 2
    assert (first_handler.most_at_once, second_handler.most_at_once) == (1, 1)
