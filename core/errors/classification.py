"""Turn any exception into an `ErrorCategory`.

The supervisor, the retry decorator and the circuit breaker all decide through
`classify_exception`, so a library's exceptions (aiokafka, azure-core, the
standard library) are mapped once, here, by what they mean for a retry:

* PipelineError: its own category.
* aiokafka: authentication failures AUTH; authorisation, size and protocol
  misuse PERMANENT; retriable errors, lost connections, timeouts and rebalances
  TRANSIENT; the rest UNKNOWN.
* azure-core: ClientAuthenticationError AUTH (checked before its base class),
  HttpResponseError by status, request/response transport errors TRANSIENT.
* httpx (recognised by module and class names, never imported): HTTPStatusError by
  its response's status; timeouts and transport errors TRANSIENT. How long an HTTP
  error asks us to wait (Retry-After) is core.errors.retry_after's business.
* builtins: TimeoutError, ConnectionError and network OSErrors TRANSIENT;
  ValueError/TypeError/KeyError/IndexError/AttributeError/UnicodeError (bad
  input) PERMANENT.
* An exception that is otherwise UNKNOWN is judged by its explicit `__cause__`
  (`raise Wrapper(...) from original`), so wrapping does not hide meaning.
* Exception groups: the most severe member decides, in the order of
  `SEVERITY` (PERMANENT > AUTH > CIRCUIT_OPEN > TRANSIENT > UNKNOWN): one member
  that cannot succeed makes the whole group unrecoverable; an auth failure needs a
  refresh before any retry could help; an open circuit must be waited out.

Domain knowledge plugs in with `compose_classifier`: a classifier of the user's is
consulted first on every exception (and on each member and cause the built-in rules
would look at); where it answers None or UNKNOWN ("I do not know this one"), the
built-in rules decide. A classifier that raises is treated as having no answer, so a
bug in it cannot turn every failure into a crash of the decision path.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Final, TypeAlias

from core.errors.exceptions import PipelineError
from core.types import ErrorCategory, ErrorClassifier

__all__ = [
    "SEVERITY",
    "ComposedClassifier",
    "DefaultErrorClassifier",
    "UserClassifier",
    "classify_exception",
    "classify_http_status",
    "compose_classifier",
    "is_retryable",
    "most_severe",
]

SEVERITY: Final[tuple[ErrorCategory, ...]] = (
    ErrorCategory.PERMANENT,
    ErrorCategory.AUTH,
    ErrorCategory.CIRCUIT_OPEN,
    ErrorCategory.TRANSIENT,
    ErrorCategory.UNKNOWN,
)
"""Categories from most to least severe; used to judge exception groups."""

_RANK: Final = {category: rank for rank, category in enumerate(SEVERITY)}
_UNKNOWN: Final = ErrorCategory.UNKNOWN

_NETWORK_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EHOSTDOWN,
        errno.EADDRNOTAVAIL,
    }
)

_BAD_INPUT: Final = (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError)

_KAFKA_AUTH: Final = frozenset(
    {
        "AuthenticationFailedError",
        "SaslAuthenticationFailed",
        "IllegalSaslStateError",
        "DelegationTokenExpired",
    }
)
_KAFKA_PERMANENT: Final = frozenset(
    {
        "AuthenticationMethodNotSupported",
        "UnsupportedSaslMechanismError",
        "TopicAuthorizationFailedError",
        "GroupAuthorizationFailedError",
        "ClusterAuthorizationFailedError",
        "TransactionalIdAuthorizationFailed",
        "MessageSizeTooLargeError",
        "RecordTooLargeError",
        "RecordListTooLargeError",
        "InvalidTopicError",
        "InvalidGroupIdError",
        "InvalidConfigurationError",
        "KafkaConfigurationError",
        "UnsupportedVersionError",
        "UnsupportedCodecError",
        "IncompatibleBrokerVersion",
        "UnrecognizedBrokerVersion",
        "IllegalArgumentError",
        "SecurityDisabled",
        "PolicyViolationError",
        "OffsetMetadataTooLargeError",
    }
)
_KAFKA_TRANSIENT: Final = frozenset(
    {
        "KafkaTimeoutError",
        "KafkaUnavailableError",
        "BrokerNotAvailableError",
        "CommitFailedError",
        "RebalanceInProgressError",
        "IllegalGenerationError",
        "UnknownMemberIdError",
        "ReplicaNotAvailableError",
        "ConsumerStoppedError",
        "ProducerClosed",
        "QuotaViolationError",
    }
)


def classify_http_status(status: int) -> ErrorCategory:
    """Category of an HTTP status: 401/403 AUTH; 408, 429, 5xx TRANSIENT; other 4xx PERMANENT.

    Informational, success and redirect statuses are not failures by themselves;
    if one is raised anyway it is UNKNOWN.
    """
    if status in (401, 403):
        return ErrorCategory.AUTH
    if status in (408, 429) or 500 <= status <= 599:
        return ErrorCategory.TRANSIENT
    if 400 <= status <= 499:
        return ErrorCategory.PERMANENT
    return ErrorCategory.UNKNOWN


def most_severe(categories: list[ErrorCategory]) -> ErrorCategory:
    """The most severe of `categories` (UNKNOWN for none)."""
    if not categories:
        return ErrorCategory.UNKNOWN
    return min(categories, key=_RANK.__getitem__)


def classify_exception(exc: BaseException) -> ErrorCategory:
    """The category that decides how `exc` is handled (see the module docstring)."""
    category = _category_of_type.get(type(exc))  # never holds PipelineErrors nor groups
    if category is not None and (category is not _UNKNOWN or exc.__cause__ is None):
        return category
    if not isinstance(exc, BaseExceptionGroup):  # the common case, on retry and breaker paths
        category = exc.category if isinstance(exc, PipelineError) else _classify_single(exc)
        if category is not _UNKNOWN or exc.__cause__ is None:
            return category
    return _classify(exc, depth=0)


def is_retryable(exc: BaseException) -> bool:
    """True when retrying the same call may succeed without anyone's help."""
    return classify_exception(exc) in (ErrorCategory.TRANSIENT, ErrorCategory.UNKNOWN)


class DefaultErrorClassifier:
    """`ErrorClassifier` that applies `classify_exception`; subclass to add a domain."""

    def classify(self, exc: BaseException) -> ErrorCategory:
        """Return the category of `exc`."""
        return classify_exception(exc)


_MAX_CAUSE_DEPTH: Final = 8
_logger = logging.getLogger(__name__)

UserClassifier: TypeAlias = "ErrorClassifier | Callable[[BaseException], ErrorCategory | None]"
"""An object with `classify(exc)`, or a plain function; None or UNKNOWN means "no answer"."""


class ComposedClassifier:
    """`ErrorClassifier` that asks a user's classifier first and the built-in rules after."""

    def __init__(self, first: UserClassifier) -> None:
        classify: Callable[[BaseException], object] | None = getattr(first, "classify", None)
        if classify is None:
            if not callable(first):
                raise TypeError(
                    f"a classifier needs a classify(exc) method or must be callable, got {first!r}"
                )
            classify = first
        self.first = first
        self._ask = classify

    def classify(self, exc: BaseException) -> ErrorCategory:
        """The user's answer when it has one, else the built-in rules' (see the module)."""
        return self._classify(exc, depth=0)

    def _classify(self, exc: BaseException, depth: int) -> ErrorCategory:
        answer = self._answer(exc)
        if answer is not None:
            return answer
        if isinstance(exc, BaseExceptionGroup):
            category = most_severe([self._classify(member, depth) for member in exc.exceptions])
        else:
            category = _classify_single(exc)
        if category is _UNKNOWN and exc.__cause__ is not None and depth < _MAX_CAUSE_DEPTH:
            return self._classify(exc.__cause__, depth + 1)
        return category

    def _answer(self, exc: BaseException) -> ErrorCategory | None:
        try:
            answer = self._ask(exc)
        except Exception:
            _logger.exception("error classifier %r failed; the built-in rules decide", self.first)
            return None
        if isinstance(answer, ErrorCategory) and answer is not _UNKNOWN:
            return answer
        return None

    def __repr__(self) -> str:
        return f"ComposedClassifier({self.first!r})"


def compose_classifier(first: UserClassifier | None) -> ErrorClassifier:
    """A classifier asking `first` before the built-in rules (only those when it is None)."""
    return DefaultErrorClassifier() if first is None else ComposedClassifier(first)


def _classify(exc: BaseException, depth: int) -> ErrorCategory:
    if isinstance(exc, BaseExceptionGroup):
        category = most_severe([_classify(member, depth) for member in exc.exceptions])
    else:
        category = _classify_single(exc)
    if category is ErrorCategory.UNKNOWN and exc.__cause__ is not None and depth < _MAX_CAUSE_DEPTH:
        return _classify(exc.__cause__, depth + 1)
    return category


_TYPE_CACHE_LIMIT: Final = 1024
_category_of_type: dict[type[BaseException], ErrorCategory] = {}
"""Categories that follow from an exception's type alone, so each type is judged once.

Bounded, so classes created at run time cannot grow it without limit."""


def _classify_single(exc: BaseException) -> ErrorCategory:
    if isinstance(exc, PipelineError):
        return exc.category
    exc_type = type(exc)
    category = _category_of_type.get(exc_type)
    if category is not None:
        return category
    category, type_decides = _judge(exc)
    if type_decides and len(_category_of_type) < _TYPE_CACHE_LIMIT:
        _category_of_type[exc_type] = category
    return category


def _judge(exc: BaseException) -> tuple[ErrorCategory, bool]:
    """The category of `exc`, and whether every instance of its type would get the same."""
    module = type(exc).__module__
    if module.startswith("aiokafka"):
        return _classify_kafka(exc), True
    if module.startswith("azure."):
        return _classify_azure(exc)
    if module.startswith("httpx"):
        return _classify_httpx(exc)
    return _classify_builtin(exc)


def _classify_httpx(exc: BaseException) -> tuple[ErrorCategory, bool]:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "HTTPStatusError" in names:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int):
            return classify_http_status(status), False
        return ErrorCategory.UNKNOWN, False
    if names & {"TimeoutException", "NetworkError", "RemoteProtocolError", "ProxyError"}:
        return ErrorCategory.TRANSIENT, True
    return _classify_builtin(exc)


def _classify_kafka(exc: BaseException) -> ErrorCategory:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _KAFKA_AUTH:
        return ErrorCategory.AUTH
    if names & _KAFKA_PERMANENT:
        return ErrorCategory.PERMANENT
    if getattr(exc, "retriable", False) or names & _KAFKA_TRANSIENT:
        return ErrorCategory.TRANSIENT
    return ErrorCategory.UNKNOWN


def _classify_azure(exc: BaseException) -> tuple[ErrorCategory, bool]:
    from azure.core import exceptions as azure_errors

    if isinstance(exc, azure_errors.ClientAuthenticationError):
        return ErrorCategory.AUTH, True
    if isinstance(exc, azure_errors.HttpResponseError):
        status = exc.status_code
        category = classify_http_status(status) if status is not None else ErrorCategory.UNKNOWN
        return category, False
    if isinstance(exc, azure_errors.ServiceRequestError | azure_errors.ServiceResponseError):
        return ErrorCategory.TRANSIENT, True
    return ErrorCategory.UNKNOWN, True


def _classify_builtin(exc: BaseException) -> tuple[ErrorCategory, bool]:
    if isinstance(exc, TimeoutError | ConnectionError | socket.gaierror):
        return ErrorCategory.TRANSIENT, True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return ErrorCategory.TRANSIENT, False
    type_decides = not isinstance(exc, OSError)  # another OSError may carry a network errno
    if isinstance(exc, _BAD_INPUT):
        return ErrorCategory.PERMANENT, type_decides
    return ErrorCategory.UNKNOWN, type_decides
