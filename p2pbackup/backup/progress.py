"""What a backup or restore tells its caller while it runs, and how often.

Both engines count their work in a stats dataclass of this module and hand it,
as JSON-ready fields (the CLI's --json and the peer's control socket show them
as they are), to a progress callback. A report per chunk or per file would cost more
than the work it describes and flood a front end, so reports go out at most
every `PROGRESS_EVERY` seconds of trio's clock (virtual time in the simulator),
and once more, forced, when the run ends.
"""

from __future__ import annotations

import builtins
import dataclasses
import os
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import trio

ProgressFn = Callable[[dict[str, Any]], Awaitable[None]]
PROGRESS_EVERY = 0.25


@dataclasses.dataclass
class RunStats:
    """A run's counters; `PROBLEMS` names its list of (path, reason) pairs."""

    PROBLEMS: ClassVar[str]

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values; the (path, reason) pairs become objects."""
        out = dataclasses.asdict(self)
        out[self.PROBLEMS] = [{"path": p, "reason": r} for p, r in out[self.PROBLEMS]]
        return out


@dataclasses.dataclass
class BackupStats(RunStats):
    """What a backup run read, reused and sent; `errors` lists the paths left out."""

    PROBLEMS = "errors"

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0
    chunks_new: int = 0
    chunks_reused: int = 0
    files_unchanged: int = 0
    packs: int = 0
    index_blobs: int = 0
    errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RestoreStats(RunStats):
    """What a restore made and wrote; `failures` lists what was not restored as saved."""

    PROBLEMS = "failures"

    files_restored: int = 0
    files_failed: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    # `builtins.bytes`: inside this class, `bytes` names the byte count.
    def fail(self, path: builtins.bytes, reason: str) -> None:
        """List a path that was not restored as it should be, with why."""
        self.failures.append((os.fsdecode(path), reason))


class Reporter:
    """Hands a run's stats to `progress` (when there is one), a few times a second at most."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self._last = -float("inf")

    async def report(self, stats: RunStats, force: bool = False) -> None:
        """Send `stats` unless a report went out less than `PROGRESS_EVERY` ago;
        `force` sends it anyway (the end of a run)."""
        if self.progress is None:
            return
        now = trio.current_time()
        if force or now - self._last >= PROGRESS_EVERY:
            self._last = now
            await self.progress(stats.as_dict())
