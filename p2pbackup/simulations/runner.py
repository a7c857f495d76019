"""Run a scenario on virtual time from one seed; the CLI's `simulate` calls this."""

from __future__ import annotations

import gc
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio
import trio.testing

from p2pbackup.net.at_once import seed_trio_scheduler


def pin_trio_scheduler(seed: int) -> None:
    """Make trio's choice among ready tasks depend on the seed alone.

    Seeding trio's generator is not enough: tasks whose timers end at the
    same virtual instant are woken in the order of their objects' memory
    addresses, which differ between processes (and between runs in one), and
    trio merely reverses that order at random. In its deterministic mode, the
    one it turns on for Hypothesis, each batch of ready tasks is sorted by
    creation order before the seeded shuffle, so the order no longer depends
    on where the objects happen to live. The mode stays on for the rest of
    the process; it costs one sort per batch.
    """
    from trio._core import _run

    seed_trio_scheduler(seed)
    setattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", True)  # noqa: B010 (a Final in trio)


def jumping_clock() -> trio.testing.MockClock:
    """An autojumping MockClock whose jump asks the run loop for its next deadline alone.

    trio's own jump builds a whole `RunStatistics` (its I/O backend's included),
    and a simulation jumps about once per message. It jumps to the same
    instant, so no result changes. Its time is read without the real clock:
    at rate 0 trio's formula adds 0.0 times the real time elapsed to the
    virtual base, which is the base exactly, and the run loop and every
    request read it (a fiftieth of a large run). Having jumped, it ends the
    timers due at the new instant there and then, as the run loop's next pass
    would first thing: the tasks they wake run in the batch of this pass, and
    a pass with nothing to run is saved per instant (decision 0091). (MockClock
    may not be subclassed.)
    """
    from trio._core import _run

    clock = trio.testing.MockClock(autojump_threshold=0)
    assert clock.rate == 0

    def virtual_now() -> float:
        return clock._virtual_base

    def autojump() -> None:
        deadlines = _run.GLOBAL_RUN_CONTEXT.runner.deadlines
        jump = deadlines.next_deadline() - clock.current_time()
        if 0 < jump < math.inf:
            clock.jump(jump)
            deadlines.expire(clock._virtual_base)

    setattr(clock, "_autojump", autojump)  # noqa: B010 (the run loop's private hook)
    setattr(clock, "current_time", virtual_now)  # noqa: B010 (the rate stays 0)
    return clock


def run_scenario(main: Callable[[], Awaitable[dict[str, Any]]], seed: int) -> dict[str, Any]:
    """Run `main` under an autojumping virtual clock with trio's scheduler pinned.

    With the scheduler and every generator seeded, the same seed replays the
    same event order, which is what makes a failing run reproducible.
    """
    pin_trio_scheduler(seed)
    clock = jumping_clock()

    async def polling_seldom() -> dict[str, Any]:
        from trio._core import _run

        runner = _run.GLOBAL_RUN_CONTEXT.runner
        runner.io_manager = SeldomPolls(runner.io_manager)  # type: ignore[assignment]
        if not runner.instruments.data["_all"]:
            runner.instruments = NoInstruments({"_all": {}})  # type: ignore[assignment]
        return await main()

    with sparse_collections():
        return trio.run(polling_seldom, clock=clock)


class NoInstruments(dict[str, dict[Any, None]]):
    """trio's set of instruments for a run that has none: a plain dict, so the run
    loop's look for a hook, several per task step, is a C-level miss rather than a
    Python call (`Instruments` is a `UserDict`: a hundred-and-fortieth of a simulated
    month). Adding an instrument gives the run trio's own set back, with it in."""

    def add_instrument(self, instrument: trio.abc.Instrument) -> None:
        from trio._core import _run
        from trio._core._instrumentation import Instruments

        _run.GLOBAL_RUN_CONTEXT.runner.instruments = Instruments([instrument])

    def remove_instrument(self, instrument: trio.abc.Instrument) -> None:
        raise KeyError(instrument)  # as trio's set does for one it does not hold


# Passes of the run loop with nothing to wait for between two looks at the OS's I/O.
POLL_EVERY = 256


class SeldomPolls:
    """trio's I/O manager as a simulation needs it: asked for events without a wait
    only every `POLL_EVERY` passes.

    On virtual time the run loop never sleeps (the clock jumps instead), so it asks
    the OS for I/O with a zero timeout at every pass: a system call per pass, about
    a thirtieth of a large run, and a simulated world has no sockets. The passes it
    skips report no events, as the call would have; a wake from a thread or a
    signal (Ctrl-C) waits for the next real look, a few hundred passes later.
    """

    __slots__ = ("_io", "_skipped")

    def __init__(self, io: Any) -> None:
        self._io = io
        self._skipped = 0

    def get_events(self, timeout: float) -> Any:
        if timeout <= 0 and self._skipped < POLL_EVERY:
            self._skipped += 1
            return []
        self._skipped = 0
        return self._io.get_events(timeout)

    def process_events(self, events: Any) -> None:
        if events:
            self._io.process_events(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._io, name)


# Allocations between young-generation collections, and young collections between
# middle ones (CPython's defaults: 700 and 10). The 10,000-peer churn week spent 85 s
# of 622 in the collector at 50,000 and 20, and 33 s of 550 at these (run side by
# side), for 3.7 GB at its peak instead of 2.7 (decision 0083).
GC_YOUNG = 400_000
GC_MIDDLE = 50


@contextmanager
def sparse_collections() -> Iterator[None]:
    """Run the cycle collector less often while a world lives, then as before.

    A world of thousands of peers keeps millions of objects alive, and CPython's
    default thresholds scan them ever more often as the world grows: at 1,000
    peers the collector took a quarter of the run. Every 400,000 allocations
    instead of every 700, the garbage between scans (cancelled timers, ended
    tasks) is still small beside what a world keeps alive. When garbage is
    collected cannot change a result: nothing in the peer code runs from a
    finaliser, and seeded runs print the same JSON either way (decision 0047).
    """
    before = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, GC_MIDDLE, before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
