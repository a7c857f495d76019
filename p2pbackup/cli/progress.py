"""Progress on a terminal for long operations (backup, restore, check, prune), on stderr.

Nothing is drawn when stderr is not a terminal, so scripts and `--json`
output stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from p2pbackup.base.sizes import format_size


def _rate(count: float, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    return f"{format_size(int(count / elapsed))}/s"


@contextmanager
def live_progress(title: str, kind: str) -> Iterator[Any]:
    """Yields a callback for the peer's progress frames. Off a terminal it draws nothing
    and rich is not even loaded: a script's command (`--json`) starts that much sooner."""
    if not sys.stderr.isatty():
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    started = time.monotonic()
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(title, total=None, detail="starting")

        def update(frame: dict[str, Any]) -> None:
            if kind == "backup":
                detail = (
                    f"{frame.get('files', 0)} files, {format_size(frame.get('bytes', 0))} "
                    f"scanned, {format_size(frame.get('bytes_read', 0))} read "
                    f"({_rate(frame.get('bytes_read', 0), started)}), "
                    f"{format_size(frame.get('bytes_sent', 0))} sent"
                )
            elif kind == "restore":
                detail = (
                    f"{frame.get('files_restored', 0)} files, "
                    f"{format_size(frame.get('bytes', 0))} "
                    f"({_rate(frame.get('bytes', 0), started)})"
                )
            else:
                detail = pack_detail(frame)
            progress.update(task, detail=detail)

        yield update


def _ignore(frame: dict[str, Any]) -> None:
    """The progress callback off a terminal."""


# Pack-by-pack work: (count field, total field, verb) as the peer reports them.
_PACK_STEPS = (
    ("packs_checked", "packs", "checked"),
    ("packs_repacked", "packs_to_repack", "repacked"),
    ("packs_renewed", "packs", "renewed"),
)


def pack_detail(frame: dict[str, Any]) -> str:
    """One line for a progress frame of check, repair, prune or renew."""
    for done, total, verb in _PACK_STEPS:
        if done in frame:
            return f"{verb} {frame[done]} of {frame.get(total, '?')} packs"
    if "packs_released" in frame:
        return (
            f"releasing {frame['packs_released']} packs, "
            f"{frame.get('shares_dropped', 0)} shares dropped"
        )
    return "working"
