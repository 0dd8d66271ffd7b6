"""Auth failures, each carrying the category that decides what happens next.

All are `core.errors.AuthError`s, so `except AuthError` catches every one. The
category is not always AUTH: a network failure or a 5xx from the token endpoint
is TRANSIENT (retrying later helps, refreshing does not), and a setup mistake
(a missing variable, no `az` on PATH, an unreadable certificate) is PERMANENT
(a person must fix it). Messages say what to fix and never contain a secret.
"""

from __future__ import annotations

from core.errors import AuthError, ConfigurationError
from core.types import ErrorCategory

__all__ = ["CredentialConfigurationError", "CredentialError", "KafkaOAuthError"]


class CredentialError(AuthError):
    """A credential could not produce a token (category AUTH unless told otherwise)."""


class CredentialConfigurationError(CredentialError, ConfigurationError):
    """The credential is set up wrongly; retrying cannot help until a person fixes it."""

    default_category = ErrorCategory.PERMANENT


class KafkaOAuthError(AuthError):
    """The Kafka OAUTHBEARER token provider could not hand aiokafka a token."""
