"""The peer's end of a backup or restore run in a child process (see `engine_child`).

Why a process: in one interpreter, the engines' worker threads and the peer's
event loop hand the interpreter lock back and forth on every read, hash, seal
and write of every small file, tens of thousands of times per run, and a
first backup ran at a quarter of what the codec can do. In a child, the
per-file work has its own lock and core; the peer only places the packs a
backup finishes and fetches the packs a restore asks for.

A child is reaped before `run_backup_process` or `run_restore_process`
returns or raises: an error, a cancellation or a child that dies ends both.
The child also stops when its standard input closes, so a killed peer leaves
no engine running behind it.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.codec.packstore import PackStore
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.control import Progress
from p2pbackup.peer.pipe_frames import FrameChannel

CHILD = [sys.executable, "-m", "p2pbackup.peer.engine_child"]
PIPE_BYTES = 1024 * 1024
# After its `done` frame a child only closes its catalog; past this it is killed.
CHILD_EXIT_SECONDS = 10.0


@dataclass(frozen=True)
class BackupJob:
    """Everything a backup child needs besides the keys."""

    catalog: Path
    paths: tuple[str, ...]
    host: str
    tags: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    parent: Snapshot | None = None
    parallel_uploads: int = 4

    def fields(self) -> dict[str, Any]:
        return {
            "job": "backup",
            "catalog": str(self.catalog),
            "paths": list(self.paths),
            "host": self.host,
            "tags": list(self.tags),
            "excludes": list(self.excludes),
            "parent": self.parent.to_wire() if self.parent else None,
            "parallel_uploads": self.parallel_uploads,
        }


@dataclass(frozen=True)
class RestoreJob:
    """Everything a restore child needs besides the keys (see `RestoreEngine.run`)."""

    snapshot: Snapshot
    target: Path
    includes: tuple[str, ...] = ()
    index_blobs: tuple[Locator, ...] | None = None
    released: frozenset[bytes] = frozenset()

    def fields(self) -> dict[str, Any]:
        blobs = self.index_blobs
        return {
            "job": "restore",
            "snapshot": self.snapshot.to_wire(),
            "target": str(self.target),
            "includes": list(self.includes),
            "index_blobs": None if blobs is None else [loc.to_wire() for loc in blobs],
            "released": sorted(self.released),
        }


@dataclass
class ChildResult:
    """What a child's `done` frame reported."""

    stats: dict[str, Any]
    # The child's peak memory and CPU seconds, for `--json` and the benchmark:
    # neither shows in the peer's own figures.
    process: dict[str, Any]

    @classmethod
    def of(cls, done: dict[str, Any]) -> ChildResult:
        return cls(dict(done.get("stats") or {}), dict(done.get("process") or {}))


class EngineProcesses:
    """Starts engine processes, keeping one started ahead so a job does not wait for
    an interpreter to start and import the engine (about a tenth of a first backup
    of a 100 MB tree, and half of an unchanged one).

    `keep_one_ready` runs in the peer's nursery; the process it holds waits,
    idle, for its `start` frame. Each job takes it, and the next one is
    started when that job ends, not while it competes for the cores."""

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
) -> tuple[Snapshot, ChildResult]:
    """Run one backup in a child process; raises `P2PBackupError` with the child's reason."""
    done = await _run_child(keys, job, packs, progress, processes)
    return Snapshot.from_wire(done["snapshot"]), ChildResult.of(done)


async def run_restore_process(
    keys: OwnerKeys,
    job: RestoreJob,
    packs: PackStore,
    progress: Progress,
    processes: EngineProcesses | None = None,
) -> ChildResult:
    """Run one restore in a child process; raises `P2PBackupError` with the child's reason."""
    return ChildResult.of(await _run_child(keys, job, packs, progress, processes))


def start_frame(keys: OwnerKeys, job: BackupJob | RestoreJob) -> dict[str, Any]:
    """The first frame a child reads: the job and the master secret its keys come from."""
    return {"op": "start", "master": keys.master, **job.fields()}


async def _run_child(
    keys: OwnerKeys,
    job: BackupJob | RestoreJob,
    packs: PackStore,
    progress: Progress,
    processes: EngineProcesses | None,
) -> dict[str, Any]:
    """The child's `done` frame."""
    process = await (processes.take() if processes is not None else _start_child())
    assert process.stdin is not None and process.stdout is not None
    channel = FrameChannel(process.stdout, process.stdin)
    try:
        try:
            await channel.send(start_frame(keys, job))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            code = await process.wait()
            raise P2PBackupError(
                f"the engine process exited before it started (exit status {code}); "
                "see the peer's log"
            ) from None
        done = await _serve(channel, packs, progress, process)
        await channel.close_send()  # the child exits at the end of its input
        with trio.move_on_after(CHILD_EXIT_SECONDS):
            await process.wait()
    finally:
        await _stop(process)
        if processes is not None:
            processes.replace()
    return done


async def _serve(
    channel: FrameChannel, packs: PackStore, progress: Progress, process: trio.Process
) -> dict[str, Any]:
    """Carry out the child's puts and gets until its `done`; raises `P2PBackupError` with
    its reason."""

    async def answer(request: Any, op: str, pack_id: bytes, data: bytes | None) -> None:
        reply: dict[str, Any]
        try:
            if op == "put":
                receipt = await packs.put(pack_id, bytes(data or b""))
                wire = [receipt.pack_id, receipt.k, receipt.n, receipt.placed, receipt.bytes_sent]
                reply = {"op": "placed", "receipt": wire}
            else:
                reply = {"op": "pack", "data": await packs.get(pack_id)}
        except P2PBackupError as exc:
            reply = {"op": "failed", "message": str(exc)}
        # A child gone meanwhile is reported by the loop below, which reads its end.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await channel.send({**reply, "id": request})

    outcome: dict[str, Any] | P2PBackupError
    async with trio.open_nursery() as requests:
        try:
            while True:
                frame = await channel.receive()
                if frame is None:
                    code = await process.wait()
                    raise P2PBackupError(
                        f"the engine process stopped before it finished (exit status {code}); "
                        "see the peer's log"
                    )
                op = frame["op"]
                if op in ("put", "get"):
                    pack_id = bytes(frame["pack_id"])
                    requests.start_soon(answer, frame["id"], op, pack_id, frame.get("data"))
                elif op == "progress":
                    await progress(frame["stats"])
                elif op == "error":
                    raise P2PBackupError(str(frame["message"]))
                elif op == "done":
                    outcome = frame  # every request was answered: the engine waited
                    break
                else:
                    raise P2PBackupError(f"unexpected frame from the engine process: {op}")
        except P2PBackupError as exc:  # raised out here, not inside the nursery's group
            outcome = exc
        requests.cancel_scope.cancel()  # puts and gets still in flight when the child failed
    if isinstance(outcome, P2PBackupError):
        raise outcome
    return outcome
