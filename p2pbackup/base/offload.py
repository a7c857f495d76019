"""Where CPU and disk work runs: a worker thread on a real peer, inline in the simulator.

Hashing a share or writing it to disk would stall every other request of a
real peer, so it goes to `trio.to_thread`. The simulator swaps in `inline`:
threads finish in wall-clock order, which would break replay from a seed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")
RunSync = Callable[..., Awaitable[Any]]


async def to_thread(fn: Callable[..., T], *args: Any) -> T:
    return await trio.to_thread.run_sync(fn, *args)


async def inline(fn: Callable[..., T], *args: Any) -> T:
    await trio.lowlevel.checkpoint()
    return fn(*args)
