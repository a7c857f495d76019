"""trio's scheduler as the simulated network drives it: pinned for replay, and a
request's handler run to its answer within the network's own step."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import cast

import outcome
import trio
from trio._core._traps import CancelShieldedCheckpoint

from p2pbackup.wire.messages import Message, MessageType

# Requests whose handlers never wait (a PONG, contacts from the routing table, a share's
# claim or proof from the store): answered within the delivery, not in a task each
# (decisions 0049 and 0063). A handler of one that waits is a bug.
ANSWERED_AT_ONCE = frozenset(
    {MessageType.PING, MessageType.FIND_NODE, MessageType.QUERY_SHARE, MessageType.AUDIT}
)


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


def seed_trio_scheduler(seed: int) -> None:
    """trio shuffles ready tasks with a module-level generator; pin it for replay."""
    from trio._core import _run

    _run._r.seed(seed)
