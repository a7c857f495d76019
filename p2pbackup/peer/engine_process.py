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
import logging
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, cast

import trio

from p2pbackup.backup.snapshot import Snapshot
from p2pbackup.codec.packstore import PackStore
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.control import Progress
from p2pbackup.peer.engine_frames import (
    BackupJob,
    Failed,
    Get,
    Job,
    Outcome,
    PackData,
    Placed,
    Put,
    Report,
    RestoreJob,
    Start,
    decode_from_engine,
)
from p2pbackup.peer.heap import give_back_freed_pages
from p2pbackup.peer.pipe_frames import ClosedInFrame, FrameChannel

CHILD = [sys.executable, "-m", "p2pbackup.peer.engine_child"]
PIPE_BYTES = 1024 * 1024
# After its `done` frame a child only closes its catalog; past this it is killed.
CHILD_EXIT_SECONDS = 10.0
# A job told to stop cancels itself: a restore removes the files it began.
STOP_GRACE_SECONDS = 5.0

log = logging.getLogger("p2pbackup.engine")


@dataclass
class ChildResult:
    """What a child's `done` frame reported."""

    stats: dict[str, Any]
    # The child's peak memory and CPU seconds, for `--json` and the benchmark:
    # neither shows in the peer's own figures.
    process: dict[str, Any]

    @classmethod
    def of(cls, done: Outcome) -> ChildResult:
        return cls(dict(done.stats or {}), dict(done.process or {}))


class EngineProcesses:
    """Starts engine processes, keeping one started ahead so a job does not wait for
    an interpreter to start and import the engine (about a tenth of a first backup
    of a 100 MB tree, and half of an unchanged one).

    `keep_one_ready` runs in the peer's nursery; the process it holds waits,
    idle, for its `start` frame. Each job takes it, and the next one is
    started when that job ends, not while it competes for the cores. That is
    also when the peer gives back the heap the job's packs and shares used,
    which it keeps while a job runs (`heap`)."""

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
                await trio.to_thread.run_sync(give_back_freed_pages)
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
    """Stop (if still running) and reap; shielded, as it runs on the way out of
    cancellations. A job is asked to stop first, so that it cleans up; then killed."""
    with trio.CancelScope(shield=True):
        if process.poll() is None:
            process.terminate()
            with trio.move_on_after(STOP_GRACE_SECONDS):
                await process.wait()
        if process.poll() is None:
            process.kill()
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
    if done.snapshot is None:
        raise P2PBackupError("the backup process finished without a snapshot")
    return done.snapshot, ChildResult.of(done)


async def run_restore_process(
    keys: OwnerKeys,
    job: RestoreJob,
    packs: PackStore,
    progress: Progress,
    processes: EngineProcesses | None = None,
) -> ChildResult:
    """Run one restore in a child process; raises `P2PBackupError` with the child's reason."""
    return ChildResult.of(await _run_child(keys, job, packs, progress, processes))


def start_frame(keys: OwnerKeys, job: Job) -> dict[str, Any]:
    """The first frame a child reads: the job and the master secret its keys come from."""
    return Start(keys.master, job).encode()


async def _run_child(
    keys: OwnerKeys,
    job: Job,
    packs: PackStore,
    progress: Progress,
    processes: EngineProcesses | None,
) -> Outcome:
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


class _Requests:
    """The child's puts and gets, each carried out in a task of its own."""

    def __init__(self, channel: FrameChannel, packs: PackStore, nursery: trio.Nursery) -> None:
        self.channel = channel
        self.packs = packs
        self.nursery = nursery

    def dispatch(self, frame: dict[str, Any]) -> Outcome | Report | None:
        """Start the task a put or get asks for; anything else is the caller's. Apart,
        so no frame or put of the caller's outlives this call and keeps a pack alive."""
        sent = decode_from_engine(frame)
        if isinstance(sent, Put):
            # A bytearray off the pipe, typed as the bytes every pack store takes:
            # they only measure, slice and hash it, and a copy costs a pack's worth.
            handed = [cast(bytes, sent.data)]
            self.nursery.start_soon(self._place, sent.id, sent.pack_id, handed)
            return None
        if isinstance(sent, Get):
            self.nursery.start_soon(self._fetch, sent)
            return None
        return sent

    async def _place(self, key: int, pack_id: bytes, handed: list[bytes]) -> None:
        """`handed` holds the only reference to the pack's bytes, which the pack store
        takes: it lets them go once the shares are made, instead of each upload holding
        a pack's worth until its last holder answers."""
        reply: Placed | Failed
        try:
            reply = Placed(key, await self.packs.put(pack_id, handed.pop()))
        except P2PBackupError as exc:
            reply = Failed(key, str(exc))
        await self._answer(reply)

    async def _fetch(self, request: Get) -> None:
        reply: PackData | Failed
        try:
            reply = PackData(request.id, await self.packs.get(request.pack_id, request.size_hint))
        except P2PBackupError as exc:
            reply = Failed(request.id, str(exc))
        await self._answer(reply)

    async def _answer(self, reply: Placed | PackData | Failed) -> None:
        # A child gone meanwhile is reported by `_serve`, which reads its end.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            data = reply.data if isinstance(reply, PackData) else None
            await self.channel.send(reply.encode(), data)


async def _serve(
    channel: FrameChannel, packs: PackStore, progress: Progress, process: trio.Process
) -> Outcome:
    """Carry out the child's puts and gets until its `done`; raises `P2PBackupError` with
    its reason."""
    outcome: Outcome | P2PBackupError
    async with trio.open_nursery() as nursery:
        requests = _Requests(channel, packs, nursery)
        try:
            while True:
                try:
                    frame = await channel.receive()
                except ClosedInFrame:  # it died while sending a pack: as if it closed
                    frame = None
                if frame is None:
                    code = await process.wait()
                    raise P2PBackupError(
                        f"the engine process stopped before it finished (exit status {code}); "
                        "see the peer's log"
                    )
                sent = requests.dispatch(frame)
                del frame  # a put's pack is its `_place` task's alone from here
                if sent is None:
                    continue
                if isinstance(sent, Report):
                    await progress(dict(sent.stats))
                elif sent.error is not None:
                    if sent.trace:
                        log.error("the engine process failed: %s\n%s", sent.error, sent.trace)
                    raise P2PBackupError(sent.error)
                else:
                    outcome = sent  # every request was answered: the engine waited
                    break
        except P2PBackupError as exc:  # raised out here, not inside the nursery's group
            outcome = exc
        nursery.cancel_scope.cancel()  # puts and gets still in flight when the child failed
    if isinstance(outcome, P2PBackupError):
        raise outcome
    return outcome
