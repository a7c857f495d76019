"""Work sent to a worker thread: its answer, its error, its context, and no renaming."""

from __future__ import annotations

import contextvars
import threading

import pytest
import trio

from p2pbackup.base.offload import to_thread

WHO = contextvars.ContextVar("WHO", default="nobody")


async def test_the_answer_the_error_and_the_context_come_through() -> None:
    WHO.set("caller")
    assert await to_thread(lambda a, b: (a + b, WHO.get()), 2, 3) == (5, "caller")

    def fail() -> None:
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        await to_thread(fail)


async def test_a_call_does_not_rename_its_thread() -> None:
    """Naming the thread for each call cost two system calls; the cache's own name stays."""
    names = [await to_thread(lambda: threading.current_thread().name) for _ in range(3)]
    assert all(name.startswith("Trio thread") for name in names), names


async def test_cancelling_waits_for_the_work_to_finish() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def work() -> None:
        started.set()
        release.wait(10)
        finished.append(True)

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(to_thread, work)
            await trio.to_thread.run_sync(started.wait, 10)
            scope.cancel()
            release.set()
    assert finished == [True]
