"""The simulator's run loop: which of trio's looks at the OS's I/O it skips, and which not."""

from __future__ import annotations

from typing import Any

from p2pbackup.simulations.runner import POLL_EVERY, SeldomPolls


class CountingIO:
    def __init__(self) -> None:
        self.polls: list[float] = []
        self.processed: list[Any] = []

    def get_events(self, timeout: float) -> list[tuple[int, int]]:
        self.polls.append(timeout)
        return [(3, 1)]

    def process_events(self, events: Any) -> None:
        self.processed.append(events)

    def statistics(self) -> str:
        return "stats"


def test_zero_timeout_polls_reach_the_os_once_in_poll_every() -> None:
    io = CountingIO()
    polls = SeldomPolls(io)
    answers = [polls.get_events(0) for _ in range(3 * (POLL_EVERY + 1))]
    assert io.polls == [0, 0, 0]
    assert answers.count([(3, 1)]) == 3  # what the OS said reaches the run loop
    for events in answers:
        polls.process_events(events)
    assert io.processed == [[(3, 1)]] * 3  # skipped passes process nothing


def test_a_wait_with_a_timeout_always_reaches_the_os() -> None:
    io = CountingIO()
    polls = SeldomPolls(io)
    assert polls.get_events(0.5) == [(3, 1)]
    assert io.polls == [0.5]
    assert polls.statistics() == "stats"  # everything else passes through


def test_an_instrument_added_during_a_run_still_sees_every_task_step() -> None:
    """A run starts with no instruments as a plain dict; adding one gives trio's own
    set back, and the instrument hears the steps of the tasks that follow."""
    import trio

    from p2pbackup.simulations.runner import NoInstruments, run_scenario

    steps: list[str] = []

    class Steps(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            steps.append(task.name)

    async def main() -> dict[str, Any]:
        from trio._core import _run

        started_plain = isinstance(_run.GLOBAL_RUN_CONTEXT.runner.instruments, NoInstruments)
        trio.lowlevel.add_instrument(Steps())

        async def napper() -> None:
            await trio.sleep(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(napper, name="napper")
        return {"started_plain": started_plain}

    assert run_scenario(main, seed=1) == {"started_plain": True}
    assert steps.count("napper") >= 2  # its start, and its wake after the sleep
