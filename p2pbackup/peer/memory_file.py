"""The file a peer's maintenance memory lives in between runs (decision 0030).

Read once at start; written whole (temp file, fsync, rename) at the end of
each maintenance round and when the peer stops, never per event. A file that
does not decode is logged in one line and replaced by the next write: it
costs the peer what it had learnt, never its start.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import trio

from p2pbackup.base.files import write_atomically
from p2pbackup.maintenance.maintainer import Maintainer
from p2pbackup.maintenance.saved_state import StateUnreadable, decode_state, encode_state

log = logging.getLogger("p2pbackup.service")


class MemoryFile:
    def __init__(self, path: Path, maintainer: Maintainer) -> None:
        self.path = path
        self.maintainer = maintainer

    def load(self) -> None:
        """Take back what the last run saved, if anything; inside the peer's trio run."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        maintainer = self.maintainer
        try:
            saved = decode_state(
                data,
                maintainer.rounds,
                _shift(),
                trio.current_time(),
                maintainer.dht.peers.capacity,
            )
        except StateUnreadable as exc:
            log.warning("%s: %s; starting afresh", self.path, exc)
            return
        saved.apply(maintainer.stats, maintainer.rounds)
        maintainer.dht.peers = saved.book

    def _encode(self) -> bytes:
        maintainer = self.maintainer
        return encode_state(maintainer.stats, maintainer.rounds, maintainer.dht.peers, _shift())

    async def save(self) -> None:
        """Encoded here (the peer's state changes between awaits), written in a thread."""
        data = self._encode()
        try:
            await self.maintainer.run_sync(write_atomically, self.path, data)
        except OSError as exc:  # a full disk costs the memory of this round, not the peer
            log.warning("could not save the maintenance state to %s: %s", self.path, exc)

    def save_now(self) -> None:
        """On the way out: the same write, with no thread."""
        try:
            write_atomically(self.path, self._encode())
        except OSError as exc:
            log.warning("could not save the maintenance state to %s: %s", self.path, exc)


def _shift() -> float:
    """Wall-clock time minus the peer's clock: saved times mean the same after a restart."""
    return time.time() - trio.current_time()
