"""The foundation: error taxonomy, auth, resilience and logging.

Knows nothing of actors or supervisors (the import rule is core <- actors <- supervisor).
"""

from core.errors import PipelineError, classify_exception
from core.types import ErrorCategory, ErrorClassifier, TokenProvider

__all__ = [
    "ErrorCategory",
    "ErrorClassifier",
    "PipelineError",
    "TokenProvider",
    "classify_exception",
]
