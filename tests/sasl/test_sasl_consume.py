"""The consumer actor consumes and commits over SASL, with each mechanism, against a broker
that authenticates: PLAIN, SCRAM-SHA-512 and OAUTHBEARER with Entra-style tokens.

The OAUTHBEARER path is the production one, end to end: `AzureCredentialProvider` (service
principal with a secret) -> azure-identity and MSAL -> the HTTPS token endpoint (a local
stand-in for Entra, which cannot be reached from here) -> the token cache ->
`EventHubsTokenProvider` -> aiokafka's OAUTHBEARER -> the broker checks the JWT's
signature against the endpoint's JWKS, its audience, issuer and expiry.
"""

from __future__ import annotations

import pytest
from auth_fake_entra import FakeEntra
from consumer_testing import running, wait_until
from sasl_kafka import NAMESPACE, SCOPE, SaslKafka, entra_token_provider, sasl_settings

from actors.consumer import ConsumerSettings, KafkaConsumerActor, Record, event_hubs_profile
from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

RECORDS = 20


async def consume_and_commit(kafka: SaslKafka, config: ConsumerSettings, topic: str) -> None:
    """Run the actor until every record is handled, stop it, and check what it committed."""
    handled: list[Record] = []
    async with running(KafkaConsumerActor(config, handled.append)):
        await wait_until(lambda: len(handled) >= RECORDS, seconds=30)
    assert sorted(record.offset for record in handled) == list(range(RECORDS))
    assert await committed_offsets(kafka.plaintext, config.group_id, topic, 1) == {0: RECORDS}


async def filled_topic(kafka: SaslKafka) -> str:
    """A new topic (and its dead-letter topic) holding RECORDS records, made without auth."""
    topic = unique_name("sasl")
    await create_topics(kafka.plaintext, [topic, f"{topic}.dlq"])
    await produce(kafka.plaintext, topic, [(b"k%d" % n, b"v%d" % n) for n in range(RECORDS)])
    return topic


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_password_mechanisms_consume_and_commit(
    sasl_kafka: SaslKafka, mechanism: str
) -> None:
    """With the right user and password every record is handled and its offset committed
    (PLAIN over SASL_PLAINTEXT, SCRAM-SHA-512 over SASL_SSL with the test CA)."""
    topic = await filled_topic(sasl_kafka)
    await consume_and_commit(sasl_kafka, sasl_settings(sasl_kafka, mechanism, topic), topic)


async def test_oauthbearer_with_entra_tokens_consumes_and_commits(
    sasl_kafka: SaslKafka, fake_entra: FakeEntra
) -> None:
    """A service principal's token from the Entra-style endpoint is accepted by the broker's
    JWT validator: every record is handled and committed, and the token came from the
    endpoint for the namespace's scope."""
    topic = await filled_topic(sasl_kafka)
    provider = entra_token_provider(fake_entra)
    config = sasl_settings(
        sasl_kafka, "OAUTHBEARER", topic, oauth_token_provider=provider, auth_scope=SCOPE
    )
    await consume_and_commit(sasl_kafka, config, topic)
    assert [request["scope"] for request in fake_entra.token_requests] == [SCOPE]


async def test_the_event_hubs_profile_consumes_over_sasl_ssl(
    sasl_kafka: SaslKafka, fake_entra: FakeEntra
) -> None:
    """The Event Hubs profile's client settings (SASL_SSL, OAUTHBEARER, its timeouts, idle
    and request-size limits, idempotent dead-letter producer) work against a real broker;
    only the address and the CA differ, since the namespace's DNS name is not served here."""
    topic = await filled_topic(sasl_kafka)
    config = event_hubs_profile(
        NAMESPACE,
        topics=(topic,),
        group_id=unique_name("group"),
        token_provider=entra_token_provider(fake_entra),
        bootstrap_servers=sasl_kafka.sasl_ssl,
        ssl_context=sasl_kafka.ca.client_context(),
        commit_interval_s=0.1,
    )
    assert (config.security_protocol, config.sasl_mechanism) == ("SASL_SSL", "OAUTHBEARER")
    assert config.auth_scope == SCOPE
    await consume_and_commit(sasl_kafka, config, topic)
