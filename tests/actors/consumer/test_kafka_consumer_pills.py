"""Records that once stopped the consumer, each between normal records, against the broker.

For every case the stream goes on: the consumer keeps running, every normal record is
handled, the pill is handled or dead-lettered, and the committed offset reaches the end.
"""

from __future__ import annotations

import hashlib

import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import DedupSettings, KafkaConsumerActor, PoisonGuardSettings, Record
from actors.consumer.client_config import producer_kwargs
from actors.sinks import ForwardHandler
from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio

Produced = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]
DEFAULT_REQUEST_LIMIT = 1_048_576


class UnprintableError(ValueError):
    """A bad-input error whose __str__ raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for this error")


def normal(n: int) -> Produced:
    """Normal record `n`: key `n<n>`, a JSON value, its own trace id."""
    return b"n%d" % n, orjson.dumps({"n": n}), [("trace_id", b"t%d" % n)]


def around(pill: Produced, count: int = 5) -> list[Produced]:
    """`count` normal records, the pill, `count` more."""
    return [*map(normal, range(count)), pill, *map(normal, range(count, 2 * count))]


async def run_stream(
    bootstrap: str, topic: str, records: list[Produced], handler: object, **overrides: object
) -> KafkaConsumerActor:
    """Produce `records` one by one, run the consumer until each is handled or dead-lettered."""
    for record in records:  # one by one: a record near 1 MB must not share a request
        await produce(bootstrap, topic, [record])  # type: ignore[arg-type]  # null headers
    config = consumer_settings(
        bootstrap, topic, poison=PoisonGuardSettings(max_share=1.0), **overrides
    )
    actor = KafkaConsumerActor(config, handler)  # type: ignore[arg-type]
    async with running(actor):
        await wait_until(
            lambda: (
                actor.stats.handled + actor.stats.dead_lettered + actor.stats.deduplicated
                >= len(records)
            ),
            30,
        )
    committed = await committed_offsets(bootstrap, config.group_id, topic, 1)
    assert committed == {0: len(records)}
    return actor


async def test_a_null_trace_id_header_is_handled_without_dedup(bootstrap_servers: str) -> None:
    """A trace_id header with a null value: the record has no id, and it is handled."""
    topic = unique_name("null-trace")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    records = around((b"pill", b"{}", [("trace_id", None)]))
    handled: list[bytes | None] = []
    await run_stream(bootstrap_servers, topic, records, lambda r: handled.append(r.key))
    assert handled == [key for key, _, _ in records]


async def test_an_error_message_with_lone_surrogates_is_dead_lettered(
    bootstrap_servers: str,
) -> None:
    """A bad-input error quoting surrogateescape text: dead-lettered with valid headers."""
    topic = unique_name("surrogate")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    records = around((b"pill", b"\xff\xfe raw", [("trace_id", b"pill")]))
    handled: list[bytes | None] = []

    def handler(record: Record) -> None:
        if record.key == b"pill":
            raise ValueError(
                "cannot read " + (record.value or b"").decode("utf-8", "surrogateescape")
            )
        handled.append(record.key)

    await run_stream(bootstrap_servers, topic, records, handler)
    [letter] = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1)
    assert dict(letter.headers)["dlq.error.message"] == b"cannot read \\udcff\\udcfe raw"
    assert letter.value == b"\xff\xfe raw"
    assert len(handled) == len(records) - 1


async def test_an_exception_whose_str_raises_is_dead_lettered(bootstrap_servers: str) -> None:
    """A failing __str__ does not fail the dead-lettering: its repr is the message."""
    topic = unique_name("unprintable")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    records = around((b"pill", b"{}", [("trace_id", b"pill")]))
    handled: list[bytes | None] = []

    def handler(record: Record) -> None:
        if record.key == b"pill":
            raise UnprintableError()
        handled.append(record.key)

    await run_stream(bootstrap_servers, topic, records, handler)
    [letter] = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1)
    headers = dict(letter.headers)
    assert headers["dlq.error.message"] == b"UnprintableError()"
    assert headers["dlq.error.class"].endswith(b".UnprintableError")
    assert len(handled) == len(records) - 1


def near_limit_pill() -> Produced:
    """A record whose size is a few bytes under the default request limit."""
    headers: list[tuple[str, bytes | None]] = [("trace_id", b"pill")]
    overhead = DefaultRecordBatchBuilder.estimate_size_in_bytes(b"pill", b"", headers)
    return b"pill", b"v" * (DEFAULT_REQUEST_LIMIT - overhead - 80), headers


async def test_a_record_near_one_megabyte_is_dead_lettered(bootstrap_servers: str) -> None:
    """Its copy plus the dlq.* headers is over the default limit, and is stored anyway."""
    topic = unique_name("near-1mb")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    pill = near_limit_pill()
    records = around(pill)

    def handler(record: Record) -> None:
        if record.key == b"pill":
            raise ValueError(f"value of {len(record.value or b'')} bytes refused " + "x" * 900)

    await run_stream(bootstrap_servers, topic, records, handler)
    [letter] = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1)
    headers = dict(letter.headers)
    copy_size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        letter.key, pill[1], list(letter.headers)
    )
    assert copy_size > DEFAULT_REQUEST_LIMIT  # the copy needed the raised limit (or a cut)
    if "dlq.value.cut" in headers:
        assert (pill[1] or b"").startswith(letter.value or b"")
        assert headers["dlq.value.sha256"] == hashlib.sha256(pill[1] or b"").hexdigest().encode()
    else:
        assert letter.value == pill[1]


async def test_a_record_near_one_megabyte_is_forwarded(bootstrap_servers: str) -> None:
    """`forward:` with the consumer's producer settings takes the same record whole."""
    topic, target = unique_name("fwd-src"), unique_name("fwd-dst")
    await create_topics(bootstrap_servers, [topic, target, f"{topic}.dlq"])
    pill = near_limit_pill()
    records = around((pill[0], pill[1], [*pill[2], ("hop", b"1")]))
    settings = consumer_settings(bootstrap_servers, topic)
    forward = ForwardHandler(target, producer_kwargs(settings))
    try:
        await run_stream(bootstrap_servers, topic, records, forward)
    finally:
        await forward.aclose()
    copies = await read_topic(bootstrap_servers, target, expected=len(records))
    assert [copy.value for copy in copies] == [value for _, value, _ in records]


async def test_distinct_json_ids_beyond_64_bits_are_all_handled(bootstrap_servers: str) -> None:
    """[dedup] json_field: 2**64 and 2**64 + 1 are different ids, both handled."""
    topic = unique_name("bigint")
    await create_topics(bootstrap_servers, [topic])
    pills: list[Produced] = [(b"big%d" % n, b'{"id": %d}' % (2**64 + n), []) for n in range(3)]
    records = [*map(normal, range(3)), *pills, *map(normal, range(3, 6))]
    handled: list[bytes | None] = []
    actor = await run_stream(
        bootstrap_servers,
        topic,
        records,
        lambda r: handled.append(r.key),
        dedup=DedupSettings(json_field="id"),
        dead_letter_topic=None,
    )
    assert handled == [key for key, _, _ in records]
    assert actor.stats.deduplicated == 0


async def test_a_900_kilobyte_trace_id_is_handled_and_deduplicated(
    bootstrap_servers: str,
) -> None:
    """Long ids are kept as digests: the record is handled once, its replay skipped."""
    topic = unique_name("long-id")
    await create_topics(bootstrap_servers, [topic])
    long_id = b"i" * 900_000
    pill: Produced = (b"pill", b"{}", [("trace_id", long_id)])
    records = [*around(pill), pill]
    handled: list[bytes | None] = []
    actor = await run_stream(
        bootstrap_servers, topic, records, lambda r: handled.append(r.key), dead_letter_topic=None
    )
    assert handled == [key for key, _, _ in records[:-1]]
    assert actor.stats.deduplicated == 1
