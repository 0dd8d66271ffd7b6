"""Random crash scripts against a running Supervisor, compared with a small reference model.

Hypothesis draws a supervisor (strategy, restart policies, intensity) and a script of
(pause, child, how it exits) steps; the script runs in virtual time with zero backoff, so
every restart completes at the instant of the crash. The reference model below is written
independently of the planner and predicts the exact sequence of events: who exits, who is
stopped and in which order, who restarts, when the supervisor escalates or finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskStatus
from hypothesis import given, settings
from hypothesis import strategies as st
from supervision_harness import EventLog, Puppet, VirtualTimeLoop

from core.errors import AuthError, CircuitOpenError, PermanentError, TransientError
from supervisor import Backoff, ChildSpec, EscalationError, Restart, Strategy, Supervisor

NAMES = ("a", "b", "c", "d")
PERIOD = 5.0
KINDS = ("returned", "transient", "unknown", "auth", "circuit_open", "permanent")


@dataclass(frozen=True)
class Step:
    pause: float
    child: str
    kind: str


@dataclass
class Prediction:
    events: list[tuple[str, str]] = field(default_factory=list)
    ending: tuple[str, ...] = ("stopped",)
    auth_refreshes: int = 0


def predict(
    script: list[Step], policies: dict[str, Restart], strategy: Strategy, max_restarts: int
) -> Prediction:
    """What the supervision rules say must happen, step by step."""
    out = Prediction(events=[("started", n) for n in NAMES])
    running = list(NAMES)
    counted: list[float] = []
    now = 0.0

    def stop_all_and(ending: tuple[str, ...]) -> Prediction:
        out.events += [("stopped", n) for n in reversed(NAMES) if n in running]
        out.ending = ending
        return out

    for step in script:
        now += step.pause
        if step.child not in running:
            continue
        running.remove(step.child)
        out.events.append(("exited", step.child))
        if step.kind == "permanent":
            stop_all_and(("escalated", step.child, "permanent"))
            out.events.append(("escalated", step.child))
            return out
        policy = policies[step.child]
        if policy is Restart.NEVER or (policy is Restart.ON_FAILURE and step.kind == "returned"):
            if not running:
                out.ending = ("returned",)
                return out
            continue
        if step.kind != "circuit_open":
            if len([t for t in counted if now - t < PERIOD]) >= max_restarts:
                stop_all_and(("escalated", step.child, "intensity"))
                out.events.append(("escalated", step.child))
                return out
            counted.append(now)
        position = NAMES.index(step.child)
        scope = {
            Strategy.ONE_FOR_ONE: (step.child,),
            Strategy.ONE_FOR_ALL: NAMES,
            Strategy.REST_FOR_ONE: NAMES[position:],
        }[strategy]
        stopped = [n for n in reversed(scope) if n in running]
        out.events += [("stopped", n) for n in stopped]
        again = [
            n
            for n in NAMES
            if n == step.child or (n in stopped and policies[n] is not Restart.NEVER)
        ]
        out.events += [("restarting", n) for n in again] + [("started", n) for n in again]
        running = [n for n in NAMES if n in again or (n in running and n not in stopped)]
        out.auth_refreshes += step.kind == "auth"
    return stop_all_and(("stopped",))


def _error(kind: str) -> BaseException:
    return {
        "transient": TransientError("t"),
        "unknown": RuntimeError("u"),
        "auth": AuthError("a"),
        "circuit_open": CircuitOpenError("breaker", 0.0),
        "permanent": PermanentError("p"),
    }[kind]


@dataclass
class Observation:
    events: list[tuple[str, str]]
    ending: tuple[str, ...]
    auth_refreshes: int
    leaked: int


def observe(
    script: list[Step],
    policies: dict[str, Restart],
    strategy: Strategy,
    max_restarts: int,
    graceful: frozenset[str],
) -> Observation:
    """Run the script against a real Supervisor in virtual time and record what happened."""
    puppets = {n: Puppet(n, graceful=n in graceful) for n in NAMES}
    log = EventLog()
    refreshes: list[str] = []
    ending: list[tuple[str, ...]] = []
    stopping = False
    sup = Supervisor(
        [ChildSpec(n, factory=p.factory, restart=policies[n]) for n, p in puppets.items()],
        strategy=strategy,
        max_restarts=max_restarts,
        period=PERIOD,
        backoff=Backoff(base=0.0),
        on_event=log.append,
        on_auth_failure=lambda child, _: refreshes.append(child),
    )

    async def supervise(*, task_status: TaskStatus[None]) -> None:
        try:
            await sup.run(task_status=task_status)
            ending.append(("stopped",) if stopping else ("returned",))
        except EscalationError as exc:
            reason = "permanent" if exc.reason == "permanent failure" else "intensity"
            ending.append(("escalated", exc.child, reason))

    async def main() -> None:
        nonlocal stopping
        async with anyio.create_task_group() as group:
            await group.start(supervise)
            for step in script:
                await anyio.sleep(step.pause)
                if ending:
                    return
                puppet = puppets[step.child]
                if not puppet.running:
                    continue
                if step.kind == "returned":
                    puppet.finish()
                else:
                    puppet.crash(_error(step.kind))
            await anyio.sleep(0.25)
            if not ending:
                stopping = True
                sup.stop()

    anyio.run(main, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})
    return Observation(
        events=log.steps(),
        ending=ending[0],
        auth_refreshes=len(refreshes),
        leaked=sum(p.alive for p in puppets.values()),
    )


_steps = st.builds(
    Step,
    pause=st.sampled_from([0.25, 0.5, 1.0, 2.0, 6.0]),
    child=st.sampled_from(NAMES),
    kind=st.sampled_from(KINDS),
)


@settings(max_examples=80, deadline=None)
@given(
    script=st.lists(_steps, max_size=25),
    policies=st.lists(st.sampled_from(Restart), min_size=4, max_size=4),
    strategy=st.sampled_from(Strategy),
    max_restarts=st.integers(0, 4),
    graceful=st.frozensets(st.sampled_from(NAMES)),
)
def test_supervisor_follows_the_model_for_any_crash_script(
    script: list[Step],
    policies: list[Restart],
    strategy: Strategy,
    max_restarts: int,
    graceful: frozenset[str],
) -> None:
    """Events, ending and auth refreshes match the model, and no child outlives the run."""
    by_name = dict(zip(NAMES, policies, strict=True))
    expected = predict(script, by_name, strategy, max_restarts)
    observed = observe(script, by_name, strategy, max_restarts, graceful)
    assert observed.events == expected.events
    assert observed.ending == expected.ending
    assert observed.auth_refreshes == expected.auth_refreshes
    assert observed.leaked == 0
