"""Where CPU and disk work runs: a worker thread on a real peer, inline in the simulator.

Hashing a share or writing it to disk would stall every other request of a
real peer, so it goes to a worker thread. The simulator swaps in `inline`:
threads finish in wall-clock order, which would break replay from a seed.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")
RunSync = Callable[..., Awaitable[Any]]


def _not_abandoned(_raise_cancel: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED  # the work runs to its end, as it would in trio's


async def to_thread(fn: Callable[..., T], *args: Any) -> T:
    """`trio.to_thread.run_sync(fn, *args)` on trio's thread cache and its default
    limiter, without naming the thread for each call. The name is set and reset through
    ctypes, and each of those two calls lets go of the interpreter lock, which the worker
    then waits to get back while the event loop runs: a holder makes two calls per share
    and spent a tenth of its sampled time there. Cancellation waits for `fn` to finish,
    as there."""
    await trio.lowlevel.checkpoint_if_cancelled()
    async with trio.to_thread.current_default_thread_limiter():
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()

        def deliver(result: Any) -> None:
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        context = contextvars.copy_context()
        trio.lowlevel.start_thread_soon(functools.partial(context.run, fn, *args), deliver)
        result: T = await trio.lowlevel.wait_task_rescheduled(_not_abandoned)
        return result


async def inline(fn: Callable[..., T], *args: Any) -> T:
    await trio.lowlevel.checkpoint()
    return fn(*args)
