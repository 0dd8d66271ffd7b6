"""Which siblings a restart takes along, per strategy (pure rules, no tasks)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from supervisor import Strategy
from supervisor.runtime._strategy import group_restart

ORDER = ("a", "b", "c", "d")


def test_one_for_one_touches_only_the_failed_child() -> None:
    """ONE_FOR_ONE restarts the failed child and stops nobody."""
    plan = group_restart(
        Strategy.ONE_FOR_ONE, "b", ORDER, active={"a", "c", "d"}, pending=(), never=()
    )
    assert (plan.stop, plan.restart, plan.drop) == ((), ("b",), ())


def test_one_for_all_stops_everyone_in_reverse_and_restarts_in_order() -> None:
    """ONE_FOR_ALL stops the running siblings last-started first, then restarts all in order."""
    plan = group_restart(
        Strategy.ONE_FOR_ALL, "b", ORDER, active={"a", "c", "d"}, pending=(), never=()
    )
    assert (plan.stop, plan.restart) == (("d", "c", "a"), ORDER)


def test_rest_for_one_takes_only_the_later_children() -> None:
    """REST_FOR_ONE stops and restarts the children started after the failed one."""
    plan = group_restart(
        Strategy.REST_FOR_ONE, "b", ORDER, active={"a", "c", "d"}, pending=(), never=()
    )
    assert (plan.stop, plan.restart) == (("d", "c"), ("b", "c", "d"))


def test_a_never_sibling_is_stopped_and_dropped_but_a_finished_one_stays_finished() -> None:
    """A running NEVER sibling is stopped and not restarted; a finished child is left alone."""
    plan = group_restart(
        Strategy.ONE_FOR_ALL, "a", ORDER, active={"b", "c"}, pending=(), never={"c"}
    )
    assert (plan.stop, plan.restart, plan.drop) == (("c", "b"), ("a", "b"), ("c",))


def test_pending_siblings_join_the_restart_without_being_stopped() -> None:
    """A sibling still waiting to start is restarted with the group, and not stopped."""
    plan = group_restart(
        Strategy.REST_FOR_ONE, "a", ORDER, active={"b"}, pending={"c", "d"}, never={"d"}
    )
    assert (plan.stop, plan.restart, plan.drop) == (("b",), ORDER, ())


@given(
    strategy=st.sampled_from(Strategy),
    failed=st.sampled_from(ORDER),
    states=st.lists(st.sampled_from(["active", "pending", "done"]), min_size=4, max_size=4),
    never=st.sets(st.sampled_from(ORDER)),
)
def test_group_restart_is_ordered_and_confined_to_the_strategy_scope(
    strategy: Strategy, failed: str, states: list[str], never: set[str]
) -> None:
    """Stops are active siblings in reverse order, restarts are in start order and include
    the failed child, and nothing outside the strategy's scope or already finished is touched."""
    state = dict(zip(ORDER, states, strict=True))
    active = {n for n, s in state.items() if s == "active" and n != failed}
    pending = {n for n, s in state.items() if s == "pending" and n != failed}
    plan = group_restart(strategy, failed, ORDER, active=active, pending=pending, never=never)
    position = ORDER.index(failed)
    scope = {
        Strategy.ONE_FOR_ONE: {failed},
        Strategy.ONE_FOR_ALL: set(ORDER),
        Strategy.REST_FOR_ONE: set(ORDER[position:]),
    }[strategy]
    assert set(plan.stop) == active & scope
    assert list(plan.stop) == sorted(plan.stop, key=ORDER.index, reverse=True)
    assert list(plan.restart) == sorted(plan.restart, key=ORDER.index)
    assert set(plan.restart) == {failed} | (pending & scope) | ((active & scope) - never)
    assert set(plan.drop) == active & scope & never
