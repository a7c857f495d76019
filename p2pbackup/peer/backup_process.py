"""The peer's end of a backup run in a child process (see `backup_child`).

Why a process: in one interpreter, the engine's worker threads and the peer's
event loop hand the interpreter lock back and forth on every read, hash and
seal of every small file, tens of thousands of times per backup, and a first
backup ran at a quarter of what the codec can do. In a child, the per-file
work has its own lock and core; the peer only places finished packs.

A child is reaped before `run_backup_process` returns or raises: an error,
a cancellation or a child that dies ends both. The child also stops when its
standard input closes, so a killed peer leaves no engine running behind it.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.packstore import PackStore
from p2pbackup.backup.snapshot import Snapshot
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.control import Progress
from p2pbackup.peer.pipe_frames import FrameChannel

CHILD = [sys.executable, "-m", "p2pbackup.peer.backup_child"]
PIPE_BYTES = 1024 * 1024
# After its `done` frame a child only closes its catalog; past this it is killed.
CHILD_EXIT_SECONDS = 10.0


@dataclass(frozen=True)
class BackupJob:
    """Everything the child needs besides the keys."""

    catalog: Path
    paths: tuple[str, ...]
    host: str
    tags: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    parent: Snapshot | None = None
    parallel_uploads: int = 4


@dataclass
class ChildResult:
    snapshot: Snapshot
    stats: dict[str, Any]
    # The child's peak memory and the CPU seconds of this backup, for `--json` and the
    # benchmark: neither shows in the peer's own figures.
    process: dict[str, Any]


class EngineProcesses:
    """Starts backup processes, keeping one started ahead so a backup does not wait for
    an interpreter to start and import the engine (about a tenth of a first backup
    of a 100 MB tree, and half of an unchanged one).

    `keep_one_ready` runs in the peer's nursery; the process it holds waits,
    idle, for its `start` frame. Each backup takes it, and the next one is
    started when that backup ends, not while it competes for the cores."""

    def __init__(self) -> None:
        self._ready: trio.Process | None = None
        self._used = trio.Event()

    async def keep_one_ready(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()  # the peer need not wait for the first one
        try:
            while True:
                if self._ready is None:
                    self._ready = await _start_child()
                self._used = trio.Event()
                await self._used.wait()
        finally:
            if self._ready is not None:
                await _stop(self._ready)

    async def take(self) -> trio.Process:
        """A started child, the one held ready if it is still alive."""
        process, self._ready = self._ready, None
        if process is not None and process.poll() is None:
            return process
        if process is not None:
            await _stop(process)
        return await _start_child()

    def replace(self) -> None:
        """A backup ended: start the next ready process."""
        self._used.set()


async def _start_child() -> trio.Process:
    process = await trio.lowlevel.open_process(CHILD, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for stream in (process.stdin, process.stdout):
        _widen(stream)
    return process


def _widen(stream: object) -> None:
    """Give the pipe a 1 MiB buffer (Linux): a 4 MiB pack then crosses in four wake-ups
    of each side instead of sixty-four."""
    fileno = getattr(stream, "fileno", None)
    if fileno is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):  # above the system's limit: keep the default
        fcntl.fcntl(fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


async def _stop(process: trio.Process) -> None:
    """Kill (if still running) and reap; shielded, as it runs on the way out of cancellations."""
    if process.poll() is None:
        process.kill()
    with trio.CancelScope(shield=True):
        await process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                await stream.aclose()


async def run_backup_process(
    keys: OwnerKeys,
    job: BackupJob,
    packs: PackStore,
    progress: Progress,
    processes: EngineProcesses | None = None,
) -> ChildResult:
    """Run one backup in a child process; raises `P2PBackupError` with the child's reason."""
    process = await (processes.take() if processes is not None else _start_child())
    assert process.stdin is not None and process.stdout is not None
    channel = FrameChannel(process.stdout, process.stdin)
    try:
        result = await _drive(channel, keys, job, packs, progress, process)
        await channel.close_send()  # the child exits at the end of its input
        with trio.move_on_after(CHILD_EXIT_SECONDS):
            await process.wait()
    finally:
        await _stop(process)
        if processes is not None:
            processes.replace()
    return result


def start_frame(keys: OwnerKeys, job: BackupJob) -> dict[str, Any]:
    """The first frame a child reads: the job and the master secret its keys come from."""
    return {
        "op": "start",
        "master": keys.master,
        "catalog": str(job.catalog),
        "paths": list(job.paths),
        "host": job.host,
        "tags": list(job.tags),
        "excludes": list(job.excludes),
        "parent": job.parent.to_wire() if job.parent else None,
        "parallel_uploads": job.parallel_uploads,
    }


async def _drive(
    channel: FrameChannel,
    keys: OwnerKeys,
    job: BackupJob,
    packs: PackStore,
    progress: Progress,
    process: trio.Process,
) -> ChildResult:
    await channel.send(start_frame(keys, job))

    async def place(request: Any, pack_id: bytes, data: bytes) -> None:
        try:
            receipt = await packs.put(pack_id, data)
        except P2PBackupError as exc:
            answer = {"op": "failed", "id": request, "message": str(exc)}
        else:
            wire = [receipt.pack_id, receipt.k, receipt.n, receipt.placed, receipt.bytes_sent]
            answer = {"op": "placed", "id": request, "receipt": wire}
        # A child gone meanwhile is reported by the loop below, which reads its end.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await channel.send(answer)

    outcome: ChildResult | P2PBackupError
    async with trio.open_nursery() as placing:
        try:
            outcome = await _follow(channel, process, progress, placing, place)
        except P2PBackupError as exc:  # raised out here, not inside the nursery's group
            outcome = exc
        placing.cancel_scope.cancel()  # puts still in flight when the child failed
    if isinstance(outcome, P2PBackupError):
        raise outcome
    return outcome


async def _follow(
    channel: FrameChannel,
    process: trio.Process,
    progress: Progress,
    placing: trio.Nursery,
    place: Callable[[Any, bytes, bytes], Awaitable[None]],
) -> ChildResult:
    """Serve the child's frames until its `done`; raises `P2PBackupError` with its reason."""
    while True:
        frame = await channel.receive()
        if frame is None:
            code = await process.wait()
            raise P2PBackupError(
                f"the backup process stopped before it finished (exit status {code}); "
                "see the peer's log"
            )
        op = frame["op"]
        if op == "put":
            placing.start_soon(place, frame["id"], bytes(frame["pack_id"]), frame["data"])
        elif op == "progress":
            await progress(frame["stats"])
        elif op == "error":
            raise P2PBackupError(str(frame["message"]))
        elif op == "done":
            # Every put was answered before the engine could finish.
            return ChildResult(
                Snapshot.from_wire(frame["snapshot"]),
                frame["stats"],
                dict(frame.get("process") or {}),
            )
        else:
            raise P2PBackupError(f"unexpected frame from the backup process: {op}")
