"""Pause reasons make pause and resume commands idempotent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.pauses import PauseReasons

commands = st.lists(st.tuples(st.booleans(), st.sampled_from(["handler", "onelake", "kusto"])))


@given(commands)
def test_paused_exactly_while_some_reason_is_held(steps: list[tuple[bool, str]]) -> None:
    """After any commands, the consumer is paused iff a reason was held and not lifted since."""
    reasons = PauseReasons()
    held: set[str] = set()
    for pause, reason in steps:
        was_paused = bool(held)
        if pause:
            changed = reasons.hold(reason)
            held.add(reason)
            assert changed is (not was_paused)
        else:
            changed = reasons.lift(reason)
            lifted = reason in held
            held.discard(reason)
            assert changed is (lifted and not held)
        assert reasons.paused is bool(held)
        assert reasons.reasons == held


def test_lifting_a_reason_never_held_changes_nothing() -> None:
    """A resume for a breaker that never paused does not resume the others."""
    reasons = PauseReasons()
    reasons.hold("handler")
    assert not reasons.lift("onelake")
    assert reasons.paused


def test_deadlines_come_due_and_a_pause_without_one_keeps_it() -> None:
    """A reason held until a time is due from then on; holding it again without a
    deadline keeps the deadline, holding it with a new one replaces it."""
    reasons = PauseReasons()
    reasons.hold("onelake", until=10.0)
    reasons.hold("kusto")
    reasons.hold("onelake")
    assert reasons.due(9.9) == []
    assert reasons.due(10.0) == ["onelake"]
    reasons.hold("onelake", until=20.0)
    assert reasons.due(15.0) == []
