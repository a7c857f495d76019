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
