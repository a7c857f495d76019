"""Group commit: the index rows of shares that become durable together commit in one
transaction, so they pay for one sync of the log between them, not one each.

A backup sends a holder the shares of several packs at once, each put in a worker
thread of its own. The first put whose file is durable commits its row and, while
that commit syncs, the puts that follow queue theirs; the next of them commits the
whole queue. No put returns before the transaction holding its row has committed,
so what a sender is told is stored is still on disk when it is told (decision 0045).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class _Ticket:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """Calls `commit` with a batch of items, one batch at a time, from the threads
    that `add` them; `commit` runs with `lock` held and must be all or nothing.

    The queue has a lock of its own, so puts queue their rows while a commit holds
    `lock` (the index's writing connection's, not the store's: decision 0057) and syncs."""

    def __init__(self, lock: threading.RLock, commit: Callable[[list[Item]], None]) -> None:
        self._lock = lock
        self._ready = threading.Condition()
        self._commit = commit
        self._queue: list[tuple[Item, _Ticket]] = []
        self._leading = False

    @property
    def queued(self) -> int:
        """Items waiting for the next commit."""
        with self._ready:
            return len(self._queue)

    def add(self, item: Item) -> None:
        """Return once `item` is committed; raise what its commit raised."""
        ticket = _Ticket()
        with self._ready:
            self._queue.append((item, ticket))
            while not ticket.done:
                if self._leading:
                    self._ready.wait()
                    continue
                batch, self._queue = self._queue, []
                self._leading = True
                self._ready.release()
                try:
                    self._commit_batch(batch)
                finally:
                    self._ready.acquire()
                    self._leading = False
                    self._ready.notify_all()
        if ticket.error is not None:
            raise ticket.error

    def _commit_batch(self, batch: list[tuple[Item, _Ticket]]) -> None:
        """Commit `batch` (ours among it) and give each its answer."""
        try:
            with self._lock:
                self._commit([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].error = exc
            else:  # one bad row must not fail its neighbours: each alone, each its answer
                for item, ticket in batch:
                    ticket.error = self._alone(item)
        except BaseException as exc:  # interrupted: none of them is known to be stored
            for _, ticket in batch:
                ticket.error = exc
        for _, ticket in batch:
            ticket.done = True

    def _alone(self, item: Item) -> Exception | None:
        try:
            with self._lock:
                self._commit([item])
        except Exception as exc:
            return exc
        return None
