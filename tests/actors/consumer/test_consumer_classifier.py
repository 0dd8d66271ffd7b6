"""A domain classifier decides the consumer's failures before the built-in rules."""

from __future__ import annotations

import pytest
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import ConsumerState, KafkaConsumerActor, Record
from core.errors import compose_classifier
from core.types import ErrorCategory
from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio


class QuotaExhaustedError(Exception):
    """A domain error the built-in rules know nothing of (UNKNOWN: retried, restarted)."""


def quota_is_permanent(exc: BaseException) -> ErrorCategory | None:
    """The domain's knowledge: an exhausted quota never succeeds for this record."""
    return ErrorCategory.PERMANENT if isinstance(exc, QuotaExhaustedError) else None


async def test_a_domain_classifier_dead_letters_what_the_built_in_rules_would_retry(
    bootstrap_servers: str,
) -> None:
    """With the classifier, a domain error is PERMANENT: the record is dead-lettered at once
    (no retry), the records around it are handled, and the commit reaches the end."""
    topic = unique_name("classifier")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    await produce(bootstrap_servers, topic, [(None, b"a"), (None, b"over-quota"), (None, b"c")])
    handled: list[bytes] = []

    async def handle(record: Record) -> None:
        if record.value == b"over-quota":
            raise QuotaExhaustedError("monthly quota used up")
        assert record.value is not None
        handled.append(record.value)

    settings = consumer_settings(bootstrap_servers, topic)
    state = ConsumerState.for_settings(settings, classifier=compose_classifier(quota_is_permanent))
    actor = KafkaConsumerActor(settings, handle, state=state)
    async with running(actor):
        await wait_until(lambda: state.stats.committed.get((topic, 0)) == 3, 30)
    assert handled == [b"a", b"c"]
    assert state.stats.retried == 0
    [dead] = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1)
    assert dead.value == b"over-quota"
    assert (await committed_offsets(bootstrap_servers, settings.group_id, topic, 1)) == {0: 3}
