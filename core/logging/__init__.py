"""Structured logging: JSON lines, context fields, correlation ids, secret masking.

Call `setup_logging()` once at start-up; then every record carries the correlation id,
the fields of enclosing `LogContext`s and the current `KafkaLogContext`, with secrets
masked (see core.logging.masking for the exact rule). The process's own secret values,
once registered with `register_secret`, are redacted by value from every line and from
every error text rendered with `error_text`.
"""

from core.logging.context import (
    ContextState,
    capture_context,
    get_correlation_id,
    get_log_context,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from core.logging.context_managers import (
    LogContext,
    OperationContext,
    StageLogContext,
    log_operation,
    log_phase,
)
from core.logging.error_text import error_text
from core.logging.fields import OUTPUT_KEYS
from core.logging.filters import (
    CONTEXT_ATTRIBUTE,
    THIRD_PARTY_LOGGERS,
    ContextFilter,
    ThirdPartyDebugFilter,
)
from core.logging.formatters import DEFAULT_MAX_LINE_BYTES, ConsoleFormatter, JSONFormatter
from core.logging.kafka_context import KAFKA_FIELD_NAMES, KafkaLogContext
from core.logging.masking import MASK, SECRET_NAME_PARTS, is_secret_name, mask_text, mask_value
from core.logging.secret_values import forget_secrets, redact_secrets, register_secret
from core.logging.setup import HANDLER_NAME, setup_logging

__all__ = [
    "CONTEXT_ATTRIBUTE",
    "DEFAULT_MAX_LINE_BYTES",
    "HANDLER_NAME",
    "KAFKA_FIELD_NAMES",
    "MASK",
    "OUTPUT_KEYS",
    "SECRET_NAME_PARTS",
    "THIRD_PARTY_LOGGERS",
    "ConsoleFormatter",
    "ContextFilter",
    "ContextState",
    "JSONFormatter",
    "KafkaLogContext",
    "LogContext",
    "OperationContext",
    "StageLogContext",
    "ThirdPartyDebugFilter",
    "capture_context",
    "error_text",
    "forget_secrets",
    "get_correlation_id",
    "get_log_context",
    "is_secret_name",
    "log_operation",
    "log_phase",
    "mask_text",
    "mask_value",
    "new_correlation_id",
    "redact_secrets",
    "register_secret",
    "reset_correlation_id",
    "set_correlation_id",
    "setup_logging",
]
