"""Running a request's handler to its answer within the simulated network's own step."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import cast

import outcome
import trio
from trio._core._traps import CancelShieldedCheckpoint

from p2pbackup.wire.messages import Message, MessageType


def run_at_once(step: Coroutine[object, object, Message], kind: MessageType) -> Message | None:
    """Run a handler that never waits to its answer, within the current step.

    Its checkpoints (the simulator's `inline` run_sync has one) are passed
    over: trio lets a scheduler keep running the task at a checkpoint, and
    the handler's peer is known to be up. A handler that really waits is a
    bug; one that would wait only because the network itself is being
    cancelled (the simulation ends) answers nothing.
    """
    try:
        trap = step.send(None)
        while trap is CancelShieldedCheckpoint:
            trap = step.send(outcome.Value(None))  # as trio resumes a task
    except StopIteration as done:
        return cast(Message, done.value)
    step.close()
    if trio.lowlevel.current_task()._cancel_status.effectively_cancelled:
        return None
    raise RuntimeError(f"the handler of {kind} waited: it must answer at once")
