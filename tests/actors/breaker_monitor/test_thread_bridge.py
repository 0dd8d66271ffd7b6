"""ThreadBridge: items from any thread reach the event loop in order, and senders never wait."""

from __future__ import annotations

import threading

import anyio
import pytest

from actors.breaker_monitor._thread_bridge import ThreadBridge

pytestmark = pytest.mark.anyio


async def _receive_all(bridge: ThreadBridge[int], count: int) -> list[int]:
    with anyio.fail_after(5):
        return [await bridge.receive() for _ in range(count)]


async def test_items_from_many_threads_arrive_complete_and_in_each_threads_order() -> None:
    """Every item submitted by several threads at once arrives, each thread's in its own order."""
    bridge: ThreadBridge[tuple[int, int]] = ThreadBridge()
    bridge.bind()
    threads, per_thread = 4, 500

    def submit_all(sender: int) -> None:
        for seq in range(per_thread):
            bridge.submit((sender, seq))

    workers = [threading.Thread(target=submit_all, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    with anyio.fail_after(5):
        received = [await bridge.receive() for _ in range(threads * per_thread)]
    for worker in workers:
        worker.join()

    for sender in range(threads):
        assert [seq for who, seq in received if who == sender] == list(range(per_thread))
    assert bridge.pending() == 0


async def test_submit_from_the_loop_thread_itself_is_delivered() -> None:
    """Submitting on the event loop's own thread (where breakers also fire) works too."""
    bridge: ThreadBridge[int] = ThreadBridge()
    bridge.bind()
    bridge.submit(7)
    bridge.submit(8)
    assert await _receive_all(bridge, 2) == [7, 8]


async def test_submit_does_not_wait_for_a_blocked_event_loop() -> None:
    """A sender finishes while the event loop is blocked (a blocking hand-over would deadlock)."""
    bridge: ThreadBridge[int] = ThreadBridge()
    bridge.bind()
    sender = threading.Thread(target=lambda: [bridge.submit(n) for n in range(100)])
    sender.start()
    sender.join(timeout=5)  # deliberately blocks the loop: the sender must not need it

    assert not sender.is_alive()
    assert await _receive_all(bridge, 100) == list(range(100))


async def test_items_submitted_before_bind_are_delivered_after_it() -> None:
    """Items queued before a loop is bound wait for it instead of being lost."""
    bridge: ThreadBridge[int] = ThreadBridge()
    bridge.submit(1)
    bridge.submit(2)
    bridge.bind()
    assert await _receive_all(bridge, 2) == [1, 2]


def test_items_submitted_after_the_loop_closed_reach_the_next_loop() -> None:
    """After a loop ended, later items stay queued (the sender sees no error) for the next bind."""
    bridge: ThreadBridge[int] = ThreadBridge()

    async def first_loop() -> None:
        bridge.bind()

    async def second_loop() -> list[int]:
        bridge.bind()
        return await _receive_all(bridge, 1)

    anyio.run(first_loop)
    bridge.submit(42)
    assert anyio.run(second_loop) == [42]


async def test_receive_nowait_raises_would_block_when_empty() -> None:
    """receive_nowait never waits: with nothing queued it raises WouldBlock."""
    bridge: ThreadBridge[int] = ThreadBridge()
    bridge.bind()
    with pytest.raises(anyio.WouldBlock):
        bridge.receive_nowait()
    bridge.submit(3)
    assert bridge.receive_nowait() == 3
