"""The simulated network's alarm: delivering in its task's stead only where the task
would have run alone, so that no seeded run changes."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2pbackup.net.at_once import Alarm


def _run(main: object) -> None:
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def _abort(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.SUCCEEDED


async def _sleep_on_alarm(at: float, inline: list[float], woke: list[float]) -> None:
    """Sleep on an alarm set for `at` (at most a minute); note when the task woke."""
    alarm = Alarm(trio.lowlevel.current_task(), inline=inline.append)
    alarm.set(at)
    with trio.move_on_after(60):
        await trio.lowlevel.wait_task_rescheduled(_abort)
    woke.append(trio.current_time())


def test_an_alarm_alone_at_its_instant_delivers_in_its_tasks_stead() -> None:
    inline: list[float] = []
    woke: list[float] = []

    async def main() -> None:
        await _sleep_on_alarm(5.0, inline, woke)

    _run(main)
    assert (inline, woke) == ([5.0], [60.0])  # the task itself slept on


def test_alarms_sharing_an_instant_wake_their_tasks() -> None:
    """Whichever of two alarms due together trio pops first, both tasks run in one batch."""
    inline: list[float] = []
    woke: list[float] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sleep_on_alarm, 5.0, inline, woke)
            nursery.start_soon(_sleep_on_alarm, 5.0, inline, woke)

    _run(main)
    assert (inline, woke) == ([], [5.0, 5.0])


def test_an_alarm_due_while_another_task_is_ready_wakes_its_task() -> None:
    inline: list[float] = []
    woke: list[float] = []

    async def busy() -> None:
        for _ in range(5):
            await trio.lowlevel.checkpoint()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            await _sleep_on_alarm(trio.current_time(), inline, woke)

    _run(main)
    assert (inline, woke) == ([], [0.0])


def test_inline_delivery_runs_as_the_sleeping_task() -> None:
    seen: list[bool] = []

    async def main() -> None:
        me = trio.lowlevel.current_task()

        def deliver(now: float) -> None:
            seen.append(trio.lowlevel.current_task() is me)

        alarm = Alarm(me, inline=deliver)
        alarm.set(1.0)
        await trio.sleep(2)

    _run(main)
    assert seen == [True]


def test_what_inline_delivery_raises_the_sleeping_task_raises() -> None:
    def deliver(now: float) -> None:
        raise RuntimeError("a handler waited")

    async def main() -> None:
        alarm = Alarm(trio.lowlevel.current_task(), inline=deliver)
        alarm.set(1.0)
        with pytest.raises(RuntimeError, match="a handler waited"):
            await trio.lowlevel.wait_task_rescheduled(_abort)
        assert trio.current_time() == 1.0

    _run(main)
