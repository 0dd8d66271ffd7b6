"""Bearer tokens for Azure: a cache, one provider over azure-identity, Kafka OAUTHBEARER."""

from core.auth.credentials import (
    AUTH_METHODS,
    STORAGE_SCOPE,
    AzureCredentialProvider,
    get_default_provider,
    kusto_scope_for,
    set_default_provider,
)
from core.auth.errors import CredentialConfigurationError, CredentialError, KafkaOAuthError
from core.auth.kafka_oauth import (
    EVENTHUBS_RESOURCE,
    EVENTHUBS_SCOPE,
    EventHubsTokenProvider,
    create_kafka_oauth_callback,
    eventhubs_scope_for,
)
from core.auth.token_cache import DEFAULT_REFRESH_MARGIN, CachedToken, TokenCache
from core.auth.token_file import TokenFileCredential

__all__ = [
    "AUTH_METHODS",
    "DEFAULT_REFRESH_MARGIN",
    "EVENTHUBS_RESOURCE",
    "EVENTHUBS_SCOPE",
    "STORAGE_SCOPE",
    "AzureCredentialProvider",
    "CachedToken",
    "CredentialConfigurationError",
    "CredentialError",
    "EventHubsTokenProvider",
    "KafkaOAuthError",
    "TokenCache",
    "TokenFileCredential",
    "create_kafka_oauth_callback",
    "eventhubs_scope_for",
    "get_default_provider",
    "kusto_scope_for",
    "set_default_provider",
]
