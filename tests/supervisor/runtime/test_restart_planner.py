"""The pure decision table: examples per row, and a state machine against a naive model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from core.types import ErrorCategory
from supervisor import Backoff, Restart, Strategy
from supervisor.runtime._intensity import RestartIntensity
from supervisor.runtime._planner import Action, Exit, Plan, RestartPlanner

ORDER = ("a", "b", "c", "d")
_LADDER = Backoff(base=0.5, max=4.0, factor=2.0, jitter=False)


def _planner(
    policies: dict[str, Restart] | None = None,
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    stable_after: float = 10.0,
) -> RestartPlanner:
    return RestartPlanner(
        policies or dict.fromkeys(ORDER, Restart.ALWAYS),
        strategy=strategy,
        intensity=RestartIntensity(max_restarts, 5.0),
        backoff=_LADDER,
        stable_after=stable_after,
    )


def _fail(planner: RestartPlanner, child: str, exit: Exit, now: float = 0.0) -> Plan:
    others = set(ORDER) - {child}
    return planner.exited(child, exit, now, active=others, pending=())


@pytest.mark.parametrize("policy", list(Restart))
def test_permanent_escalates_whatever_the_policy(policy: Restart) -> None:
    """A PERMANENT failure escalates at once and stops every other running child."""
    plan = _fail(_planner({**dict.fromkeys(ORDER, policy)}), "b", Exit(ErrorCategory.PERMANENT))
    assert (plan.action, plan.stop, plan.reason) == (
        Action.ESCALATE,
        ("d", "c", "a"),
        "permanent failure",
    )


@pytest.mark.parametrize(
    ("policy", "exit", "action"),
    [
        (Restart.ALWAYS, Exit(), Action.RESTART),
        (Restart.ON_FAILURE, Exit(), Action.FINISH),
        (Restart.NEVER, Exit(), Action.FINISH),
        (Restart.ON_FAILURE, Exit(ErrorCategory.TRANSIENT), Action.RESTART),
        (Restart.NEVER, Exit(ErrorCategory.TRANSIENT), Action.FINISH),
    ],
)
def test_the_restart_policy_decides_whether_an_exit_restarts(
    policy: Restart, exit: Exit, action: Action
) -> None:
    """ALWAYS restarts any exit, ON_FAILURE only failures, NEVER nothing."""
    assert _fail(_planner({"a": policy}), "a", exit).action is action


def test_auth_asks_for_a_refresh_and_counts() -> None:
    """AUTH restarts with a token refresh and counts toward the intensity."""
    plan = _fail(_planner(max_restarts=1), "a", Exit(ErrorCategory.AUTH))
    assert (plan.action, plan.refresh_auth, plan.counted) == (Action.RESTART, True, True)
    assert _fail(_planner(max_restarts=0), "a", Exit(ErrorCategory.AUTH)).action is Action.ESCALATE


def test_circuit_open_waits_for_the_breaker_and_does_not_count() -> None:
    """CIRCUIT_OPEN waits the longer of retry_after and the backoff, and never escalates."""
    planner = _planner(max_restarts=0)
    waits = [
        _fail(planner, "a", Exit(ErrorCategory.CIRCUIT_OPEN, retry_after), now=t)
        for t, retry_after in enumerate((2.0, 0.0, None))
    ]
    assert [(p.action, p.counted, p.delay) for p in waits] == [
        (Action.RESTART, False, 2.0),
        (Action.RESTART, False, 1.0),
        (Action.RESTART, False, 2.0),
    ]


def test_backoff_grows_per_child_and_resets_after_a_stable_run() -> None:
    """Consecutive crashes climb the ladder; a run of stable_after seconds starts it afresh."""
    planner = _planner(max_restarts=100, stable_after=10.0)
    delays = []
    for now in (0.0, 1.0, 2.0):
        planner.started("a", now)
        delays.append(_fail(planner, "a", Exit(ErrorCategory.TRANSIENT), now + 0.5).delay)
    planner.started("a", 3.0)
    delays.append(_fail(planner, "a", Exit(ErrorCategory.TRANSIENT), 13.0).delay)
    assert delays == [0.5, 1.0, 2.0, 0.5]


_CATEGORIES = st.sampled_from([None, *ErrorCategory])


class PlannerMachine(RuleBasedStateMachine):
    """Random exits, starts and waits against a deliberately naive model of the table."""

    @initialize(
        policies=st.lists(st.sampled_from(Restart), min_size=4, max_size=4),
        strategy=st.sampled_from(Strategy),
        max_restarts=st.integers(0, 4),
        period=st.sampled_from([1.0, 5.0]),
        stable_after=st.sampled_from([0.5, 3.0]),
    )
    def setup(
        self,
        policies: list[Restart],
        strategy: Strategy,
        max_restarts: int,
        period: float,
        stable_after: float,
    ) -> None:
        self.policy = dict(zip(ORDER, policies, strict=True))
        self.strategy, self.max_restarts, self.period = strategy, max_restarts, period
        self.stable_after = stable_after
        self.planner = RestartPlanner(
            self.policy,
            strategy=strategy,
            intensity=RestartIntensity(max_restarts, period),
            backoff=_LADDER,
            stable_after=stable_after,
        )
        self.now = 0.0
        self.state = dict.fromkeys(ORDER, "pending")
        self.counted: list[float] = []
        self.attempt = dict.fromkeys(ORDER, 0)
        self.started_at: dict[str, float | None] = dict.fromkeys(ORDER)
        self.escalated = False

    def _in(self, state: str) -> list[str]:
        return [n for n in ORDER if self.state[n] == state]

    @rule(dt=st.sampled_from([0.0, 0.25, 1.0, 4.0]))
    def wait(self, dt: float) -> None:
        """Time passes (also after an escalation, which ends all other rules)."""
        self.now += dt

    @precondition(lambda self: not self.escalated and "pending" in self.state.values())
    @rule()
    def start_next(self) -> None:
        """The first pending child reports started (the runtime starts in order)."""
        child = self._in("pending")[0]
        self.planner.started(child, self.now)
        self.state[child], self.started_at[child] = "running", self.now

    @precondition(lambda self: not self.escalated and "running" in self.state.values())
    @rule(data=st.data(), category=_CATEGORIES, retry_after=st.sampled_from([None, 0.0, 3.0]))
    def exit(
        self, data: st.DataObject, category: ErrorCategory | None, retry_after: float | None
    ) -> None:
        """A running child exits; the plan must match the model, which then follows it."""
        child = data.draw(st.sampled_from(self._in("running")))
        self.state[child] = "exited"
        active, pending = set(self._in("running")), set(self._in("pending"))
        exit = Exit(category, retry_after if category is ErrorCategory.CIRCUIT_OPEN else None)
        plan = self.planner.exited(child, exit, self.now, active=active, pending=pending)
        expected = self._expected(child, exit, active, pending)
        assert plan == expected
        self._follow(child, plan)

    def _expected(self, child: str, exit: Exit, active: set[str], pending: set[str]) -> Plan:
        everyone_running = tuple(n for n in reversed(ORDER) if n in active)
        started = self.started_at[child]
        if started is not None and self.now - started >= self.stable_after:
            self.attempt[child] = 0
        self.started_at[child] = None
        if exit.category is ErrorCategory.PERMANENT:
            return Plan(Action.ESCALATE, stop=everyone_running, reason="permanent failure")
        policy = self.policy[child]
        if policy is Restart.NEVER or (policy is Restart.ON_FAILURE and exit.category is None):
            return Plan(Action.FINISH)
        counted = exit.category is not ErrorCategory.CIRCUIT_OPEN
        recent = [t for t in self.counted if self.now - t < self.period]
        if counted and len(recent) >= self.max_restarts:
            reason = f"more than {self.max_restarts} restarts in {self.period:g}s"
            return Plan(Action.ESCALATE, stop=everyone_running, reason=reason)
        delay = min(_LADDER.max, _LADDER.base * _LADDER.factor ** self.attempt[child])
        self.attempt[child] += 1
        if exit.category is ErrorCategory.CIRCUIT_OPEN:
            delay = max(delay, exit.retry_after or 0.0)
        if self.strategy is Strategy.ONE_FOR_ONE:
            group: tuple[str, ...] = (child,)
        elif self.strategy is Strategy.ONE_FOR_ALL:
            group = ORDER
        else:
            group = ORDER[ORDER.index(child) :]
        stop = tuple(n for n in reversed(group) if n in active)
        drop = tuple(n for n in group if n in active and self.policy[n] is Restart.NEVER)
        restart = tuple(
            n for n in group if n == child or n in pending or (n in active and n not in drop)
        )
        return Plan(
            Action.RESTART,
            stop=stop,
            restart=restart,
            drop=drop,
            delay=delay,
            counted=counted,
            refresh_auth=exit.category is ErrorCategory.AUTH,
        )

    def _follow(self, child: str, plan: Plan) -> None:
        if plan.action is Action.ESCALATE:
            self.escalated = True
            return
        if plan.action is Action.FINISH:
            self.state[child] = "done"
            return
        if plan.counted:
            self.counted.append(self.now)
        for name in plan.stop:
            self.state[name], self.started_at[name] = "pending", None
        for name in plan.drop:
            self.state[name] = "done"
        for name in plan.restart:
            self.state[name] = "pending"

    @invariant()
    def counted_restarts_never_exceed_the_intensity(self) -> None:
        """No window of `period` seconds holds more than max_restarts counted restarts."""
        if hasattr(self, "counted"):
            for t in self.counted:
                window = [u for u in self.counted if t <= u < t + self.period]
                assert len(window) <= self.max_restarts


PlannerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_planner_matches_the_model = PlannerMachine.TestCase
