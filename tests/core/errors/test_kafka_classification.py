"""classify_exception on real aiokafka exceptions."""

from __future__ import annotations

import inspect

import aiokafka.errors as kafka_errors
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import classify_exception
from core.types import ErrorCategory

RETRIABLE_KAFKA_ERRORS = [
    cls
    for cls in vars(kafka_errors).values()
    if inspect.isclass(cls) and issubclass(cls, BaseException) and getattr(cls, "retriable", False)
]


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (
            kafka_errors.KafkaConnectionError("broker closed the connection"),
            ErrorCategory.TRANSIENT,
        ),
        (kafka_errors.RequestTimedOutError(), ErrorCategory.TRANSIENT),
        (kafka_errors.NotLeaderForPartitionError(), ErrorCategory.TRANSIENT),
        (kafka_errors.CommitFailedError("group rebalanced"), ErrorCategory.TRANSIENT),
        (kafka_errors.RebalanceInProgressError(), ErrorCategory.TRANSIENT),
        (kafka_errors.SaslAuthenticationFailed(), ErrorCategory.AUTH),
        (kafka_errors.AuthenticationFailedError(), ErrorCategory.AUTH),
        (kafka_errors.TopicAuthorizationFailedError(), ErrorCategory.PERMANENT),
        (kafka_errors.RecordTooLargeError(), ErrorCategory.PERMANENT),
        (kafka_errors.MessageSizeTooLargeError(), ErrorCategory.PERMANENT),
    ],
    ids=lambda value: type(value).__name__,
)
def test_aiokafka_errors_map_to_their_meaning(exc: BaseException, category: ErrorCategory) -> None:
    """Lost connections, timeouts and rebalances retry; auth failures refresh; misuse is final."""
    assert classify_exception(exc) is category


def test_unmapped_non_retriable_aiokafka_error_is_unknown() -> None:
    """An aiokafka error that is neither mapped nor marked retriable is UNKNOWN."""
    exc = kafka_errors.UnknownError()
    assert not exc.retriable
    assert classify_exception(exc) is ErrorCategory.UNKNOWN


@given(cls=st.sampled_from(RETRIABLE_KAFKA_ERRORS))
def test_every_aiokafka_error_marked_retriable_is_transient(cls: type[BaseException]) -> None:
    """aiokafka's own `retriable` flag is honoured for every error class that sets it."""
    assert classify_exception(cls()) is ErrorCategory.TRANSIENT


def test_aiokafka_error_as_cause_of_a_wrapper_decides() -> None:
    """A wrapper raised `from` an aiokafka error takes that error's category."""
    wrapper = RuntimeError("consumer loop failed")
    wrapper.__cause__ = kafka_errors.SaslAuthenticationFailed()
    assert classify_exception(wrapper) is ErrorCategory.AUTH
