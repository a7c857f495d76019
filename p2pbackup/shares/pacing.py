"""Giving up on a request once it ran past an operation's stall interval.

A peer that hangs keeps its connection open and answers nothing, so a request to
it waits out its whole timeout. Placements and surveys instead stop waiting once
a request brought nothing for a few times what this operation's requests took
lately (`Pace`, decision 0029).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from p2pbackup.shares.gathering import Pace

_T = TypeVar("_T")


async def within_pace(
    pace: Pace | None,
    started: float,
    work: Callable[[], Awaitable[_T]],
    extra: Callable[[], float] | None = None,
) -> _T | None:
    """`work`'s result, or None (and `work` cancelled) once it ran past the pace's stall
    interval as that stands at each look, plus what `extra` says then (the time a
    put's bytes take on a slow uplink): the first requests of a run start before any
    answer set the pace, and must not keep the patient first guess."""
    if pace is None:
        return await work()
    done: list[_T] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            done.append(await work())
            nursery.cancel_scope.cancel()

        nursery.start_soon(run)
        while True:
            added = 0.0 if extra is None else extra()
            deadline = started + pace.stall_after() + added
            now = trio.current_time()
            if now >= deadline:
                nursery.cancel_scope.cancel()
                break
            await trio.sleep_until(min(deadline, now + pace.rule.floor))
    return done[0] if done else None
