"""Racing the routes to one peer: each begun a moment after the one before, or at once
when one fails; the first to succeed wins and the others are cancelled."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from p2pbackup.net.stagger import first_to_succeed


class Failed(Exception):
    pass


def _attempt(
    log: list[tuple[str, float]], name: str, after: float, ok: bool
) -> Callable[[], Awaitable[str]]:
    async def attempt() -> str:
        log.append((f"{name} starts", trio.current_time()))
        try:
            await trio.sleep(after)
        except trio.Cancelled:
            log.append((f"{name} cancelled", trio.current_time()))
            raise
        if not ok:
            log.append((f"{name} fails", trio.current_time()))
            raise Failed(name)
        return name

    return attempt


async def test_a_route_that_hangs_is_overtaken_by_the_next_one_after_its_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    hangs, answers = _attempt(log, "lan", 60.0, True), _attempt(log, "relay", 0.1, True)
    assert await first_to_succeed([hangs, answers], [0.0, 0.5], (Failed,)) == "relay"
    assert log == [("lan starts", 0.0), ("relay starts", 0.5), ("lan cancelled", 0.6)]


async def test_the_next_route_starts_at_once_when_one_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    attempts = [_attempt(log, "a", 0.1, False), _attempt(log, "b", 0.1, True)]
    assert await first_to_succeed(attempts, [0.0, 5.0], (Failed,)) == "b"
    assert log == [("a starts", 0.0), ("a fails", 0.1), ("b starts", 0.1)]


async def test_a_win_cancels_the_rest_and_starts_no_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    attempts = [_attempt(log, "a", 0.1, True), _attempt(log, "b", 0.1, True)]
    assert await first_to_succeed(attempts, [0.0, 1.0], (Failed,)) == "a"
    assert log == [("a starts", 0.0)]
    assert trio.current_time() == pytest.approx(0.1)


async def test_when_every_route_fails_the_last_failure_is_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[tuple[str, float]] = []
    attempts = [_attempt(log, "a", 1.0, False), _attempt(log, "b", 0.1, False)]
    with pytest.raises(Failed, match="a"):  # b started at 0.25 and failed first
        await first_to_succeed(attempts, [0.0, 0.25], (Failed,))
    assert [entry[0] for entry in log] == ["a starts", "b starts", "b fails", "a fails"]


async def test_other_errors_are_not_taken_for_a_failed_route(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken() -> str:
        raise KeyError("a bug")

    with pytest.RaisesGroup(KeyError):
        await first_to_succeed([broken, _attempt([], "b", 10.0, True)], [0.0, 0.25], (Failed,))


async def test_one_route_runs_in_the_callers_task() -> None:
    async def here() -> object:
        return trio.lowlevel.current_task()

    assert await first_to_succeed([here], [0.0], (Failed,)) is trio.lowlevel.current_task()
