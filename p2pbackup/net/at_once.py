"""trio's scheduler as the simulated network drives it: pinned for replay, and a
request's handler run to its answer within the network's own step."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Coroutine, MutableSequence
from typing import Any, cast

import outcome
import trio
from trio._core._run import GLOBAL_RUN_CONTEXT  # bound once: an alarm rings per instant
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


class Alarm:
    """A task's wake-up at a virtual instant, kept in trio's own heap of deadlines.

    The network's task sleeps until its next event is due. A cancel scope per
    sleep cost it an allocation, a cancel status and a recalculation on entry,
    expiry and exit: at 1,000 peers a fourteenth of the run. The run loop's
    heap asks an entry only for its `_registered_deadline` and, once due, calls
    its `_cancel`: an alarm is that, and reschedules its task instead. The
    clock jumps to the same instants and the same tasks wake in the same
    batches as with the scope, so seeded results do not move.

    With `inline`, an alarm that finds its task would run alone in the next
    batch (nothing else ready, no other deadline due) runs `inline(now)` in
    the task's stead, at once, as that task: the tasks it wakes make up the
    batch after it either way, so the run is the same, less a pass of the run
    loop and a task step per instant (decision 0090).
    """

    __slots__ = ("_deadlines", "_inline", "_registered_deadline", "_runner", "_task")

    def __init__(
        self, task: trio.lowlevel.Task, inline: Callable[[float], None] | None = None
    ) -> None:
        self._runner = GLOBAL_RUN_CONTEXT.runner
        self._deadlines = self._runner.deadlines
        self._registered_deadline = math.inf
        self._task = task
        self._inline = inline

    @property
    def deadline(self) -> float:
        return self._registered_deadline

    def set(self, deadline: float) -> None:
        """Wake the task at `deadline` (infinity: never), in place of any earlier setting."""
        if self._registered_deadline != math.inf:
            self._deadlines.remove(self._registered_deadline, self)  # type: ignore[arg-type]
        self._registered_deadline = deadline
        if deadline != math.inf:
            self._deadlines.add(deadline, self)  # type: ignore[arg-type]

    def _cancel(self, _reason: object) -> None:
        """Due (the run loop's `Deadlines.expire`): the task runs in this batch, or its
        `inline` runs now when the task would be all of the batch."""
        self.set(math.inf)
        runner = self._runner
        if self._inline is not None and not runner.runq:
            now = runner.clock.current_time()
            if self._deadlines.next_deadline() > now:
                self._run_inline(now)
                return
        trio.lowlevel.reschedule(self._task)

    def _run_inline(self, now: float) -> None:
        """Run `inline` as the run loop would run the task: as the current task, in its
        context (what it spawns inherits its context variables). What it raises, the
        task raises, as if raised in its own step: out of the run loop's expiry of
        deadlines it would be an internal error of trio's."""
        assert self._inline is not None
        GLOBAL_RUN_CONTEXT.task = self._task
        try:
            self._task.context.run(self._inline, now)
        except BaseException as exc:
            trio.lowlevel.reschedule(self._task, outcome.Error(exc))
        finally:
            del GLOBAL_RUN_CONTEXT.task


class Pending:
    """One simulated request waiting for its reply, its timeout or its cancellation:
    whichever comes first wakes its task, the others find it done."""

    __slots__ = ("done", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.done = False

    def finish(self, result: object) -> None:
        if not self.done:
            self.done = True
            trio.lowlevel.reschedule(self.task, outcome.Value(result))


class SchedulerRandom(random.Random):
    """trio's generator for its choice among ready tasks, its `shuffle` the standard
    library's with the draw below `i + 1` written inline: the same permutation from the
    same state, without two calls per task woken (a seventieth of a simulated month)."""

    def shuffle(self, x: MutableSequence[Any]) -> None:
        getrandbits = self.getrandbits
        for i in range(len(x) - 1, 0, -1):
            bits = (i + 1).bit_length()
            j = getrandbits(bits)
            while j > i:
                j = getrandbits(bits)
            x[i], x[j] = x[j], x[i]


def seed_trio_scheduler(seed: int) -> None:
    """trio shuffles ready tasks with a module-level generator; pin it for replay."""
    from trio._core import _run

    _run._r = SchedulerRandom(seed)
