"""The simulated network's task, once cancelled, is never woken again: a message queued
after the cancellation (a peer still sending as the run ends) must not re-arm its alarm,
or trio would resume a finished task and fail with an internal error."""

from __future__ import annotations

import random

import trio
import trio.testing

from p2pbackup.net.at_once import Pending
from p2pbackup.net.sim import SimNetwork


async def test_a_message_queued_after_the_network_stopped_wakes_nothing() -> None:
    network = SimNetwork(random.Random(1))
    delivered: list[float] = []
    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await network.run(task_status=task_status)

        await nursery.start(run)
        await trio.testing.wait_all_tasks_blocked()  # the network's task is asleep
        scope.cancel()  # its abort runs now; the task itself ends in the next batch
        guard = Pending(trio.lowlevel.current_task())
        network._at(trio.current_time() + 0.01, guard, lambda: delivered.append(1.0))
    await trio.sleep(0.05)  # past the message's instant: an armed alarm would ring here
    assert delivered == []
