"""Folders restores are writing into now: a second restore into one of them (or into a
folder inside it, or around it) is refused while the first runs.

Each restore checks that its target is new or empty before it writes; two started
together both found it empty and wrote their trees into each other's, and a file
two snapshots hold was written by both, one's blocks over the other's."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from p2pbackup.errors import P2PBackupError


class RestoreTargets:
    def __init__(self) -> None:
        self._busy: set[str] = set()

    @contextlib.contextmanager
    def claim(self, target: Path) -> Iterator[None]:
        """Hold `target` for one restore; raises `P2PBackupError` if a running restore
        writes into it, into a folder around it or into one inside it."""
        mine = os.path.normpath(os.path.abspath(target))
        for busy in self._busy:
            if _within(mine, busy) or _within(busy, mine):
                raise P2PBackupError(
                    f"a restore into {busy} is running; restore into another folder, "
                    "or wait until it ends"
                )
        self._busy.add(mine)
        try:
            yield
        finally:
            self._busy.discard(mine)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
