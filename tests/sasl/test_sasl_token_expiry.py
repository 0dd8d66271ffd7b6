"""Short-lived OAUTHBEARER tokens: the broker ends every session when its token expires
(KIP-368; aiokafka cannot re-authenticate in place), and the pipeline keeps consuming on
new connections with fresh tokens, losing nothing.

Slow by nature (it waits out several token lifetimes), so it is the one such test.
"""

from __future__ import annotations

import itertools

import anyio
import pytest
from auth_fake_entra import FakeEntra
from consumer_testing import running, wait_until
from sasl_kafka import SCOPE, SaslKafka, entra_token_provider, sasl_settings

from actors.consumer import KafkaConsumerActor, Record
from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

TOKEN_LIFETIME_S = 24
EXPIRIES = 2
REFRESH_MARGIN_S = 8.0
"""The token cache serves a token until 8 s before it expires, so every new connection
presents one with at least that long to live."""


async def test_consumption_goes_on_across_token_expiries_and_loses_nothing(
    sasl_kafka: SaslKafka, fake_entra: FakeEntra
) -> None:
    """Tokens live 24 s; over two lifetimes records keep arriving and every one is handled
    and committed, and the endpoint was asked again for each expiry (new connections)."""
    fake_entra.behaviour.expires_in = TOKEN_LIFETIME_S
    topic = unique_name("expiring")
    await create_topics(sasl_kafka.plaintext, [topic, f"{topic}.dlq"])
    config = sasl_settings(
        sasl_kafka,
        "OAUTHBEARER",
        topic,
        oauth_token_provider=entra_token_provider(fake_entra, refresh_margin_s=REFRESH_MARGIN_S),
        auth_scope=SCOPE,
    )
    handled: list[Record] = []
    produced = 0
    async with running(KafkaConsumerActor(config, handled.append)):
        with anyio.move_on_after(TOKEN_LIFETIME_S * EXPIRIES + 5):
            for batch in itertools.count():
                values = [(None, b"%d-%d" % (batch, n)) for n in range(5)]
                produced += await produce(sasl_kafka.plaintext, topic, values)
                await anyio.sleep(1)
        await wait_until(lambda: len(handled) >= produced, seconds=60)
    assert {record.offset for record in handled} == set(range(produced))
    assert await committed_offsets(sasl_kafka.plaintext, config.group_id, topic, 1) == {0: produced}
    assert len(fake_entra.token_requests) >= EXPIRIES + 1
