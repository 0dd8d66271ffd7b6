"""Helpers for testing handlers and pipelines against a real broker (like `structlog.testing`).

helpers          topics, producing, reading back a topic or a group's committed offsets
embedded_broker  launchers of the embedded Tansu broker and its local S3 store
"""

from supervisor.testing.helpers import (
    ConsumedRecord,
    EmbeddedBroker,
    committed_offsets,
    create_topics,
    external_bootstrap,
    produce,
    read_topic,
    unique_name,
)

__all__ = [
    "ConsumedRecord",
    "EmbeddedBroker",
    "committed_offsets",
    "create_topics",
    "external_bootstrap",
    "produce",
    "read_topic",
    "unique_name",
]
