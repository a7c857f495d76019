"""Run a scenario on virtual time from one seed; the CLI's `simulate` calls this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

from p2pbackup.net.sim import seed_trio_scheduler


def run_scenario(main: Callable[[], Awaitable[dict[str, Any]]], seed: int) -> dict[str, Any]:
    """Run `main` under an autojumping virtual clock with trio's scheduler seeded.

    With the scheduler and every generator seeded, the same seed replays the
    same event order, which is what makes a failing run reproducible.
    """
    seed_trio_scheduler(seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(main, clock=clock)
