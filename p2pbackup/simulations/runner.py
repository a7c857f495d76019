"""Run a scenario on virtual time from one seed; the CLI's `simulate` calls this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

from p2pbackup.net.sim import seed_trio_scheduler


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


def run_scenario(main: Callable[[], Awaitable[dict[str, Any]]], seed: int) -> dict[str, Any]:
    """Run `main` under an autojumping virtual clock with trio's scheduler pinned.

    With the scheduler and every generator seeded, the same seed replays the
    same event order, which is what makes a failing run reproducible.
    """
    pin_trio_scheduler(seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(main, clock=clock)
