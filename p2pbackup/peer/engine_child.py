"""A backup or a restore in a process of its own, started by the owner's peer for each.

Run as `python -m p2pbackup.peer.engine_child`; standard input and output are
the pipe to the peer (`engine_process` is the other end). The child runs the
very same `BackupEngine` or `RestoreEngine` the simulator runs in-process,
with a pack store whose puts and gets the peer carries out: the peer
erasure-codes and places each finished pack, or gathers and rebuilds a pack
the restore asks for. So the per-file work (reading, hashing, sealing,
opening, writing) has a core and an interpreter lock of its own, while the
peer's event loop keeps serving the mesh.

The frames both ways are typed in `engine_frames`. The child stops as soon as its standard input
closes: a peer that died or gave up takes its job with it.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.backup.restore import RestoreEngine
from p2pbackup.base.full_disk import disk_full, full_disk_line
from p2pbackup.base.offload import inline, to_thread
from p2pbackup.codec.packstore import PackReceipt, PackUnavailable
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError, os_error_line, sole_error
from p2pbackup.peer import engine_frames as frames
from p2pbackup.peer.heap import keep_freed_pages
from p2pbackup.peer.pipe_frames import FrameChannel

ProgressFn = Callable[[dict[str, Any]], Awaitable[None]]


class PipePackStore:
    """A `PackStore` whose puts and gets the parent peer carries out."""

    def __init__(self, channel: FrameChannel) -> None:
        self.channel = channel
        self._next_id = 0
        self._waiting: dict[int, tuple[trio.Event, list[frames.Answer]]] = {}
        # Asked, then given up on (a failed upload cancels the others): the peer's
        # answer may still come and is dropped.
        self._abandoned: set[int] = set()

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        answer = await self._ask(lambda key: frames.Put(key, pack_id, data))
        if not isinstance(answer, frames.Placed):
            raise P2PBackupError(_reason(answer, "the peer could not place a pack"))
        return answer.receipt

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        answer = await self._ask(lambda key: frames.Get(key, pack_id, size_hint))
        if not isinstance(answer, frames.PackData):
            raise PackUnavailable(_reason(answer, "the peer could not fetch a pack"))
        # A bytearray off the pipe, typed as the bytes every pack store gives: a restore
        # only hashes, views and slices it, and a copy costs a pack's worth.
        return cast(bytes, answer.data)

    async def _ask(self, request: Callable[[int], frames.Put | frames.Get]) -> frames.Answer:
        self._next_id += 1
        key = self._next_id
        done, answer = trio.Event(), list[frames.Answer]()
        self._waiting[key] = (done, answer)
        try:
            message = request(key)
            tail = message.data if isinstance(message, frames.Put) else None
            await self.channel.send(message.encode(), tail)
            await done.wait()
        finally:
            del self._waiting[key]
            if not answer:
                self._abandoned.add(key)
        return answer[0]

    def answer(self, frame: frames.Answer) -> None:
        if frame.id in self._abandoned:
            self._abandoned.discard(frame.id)
            return
        waiting = self._waiting.get(frame.id)
        if waiting is None:
            raise P2PBackupError(f"an answer for no pack in flight: {frame.id!r}")
        done, answer = waiting
        answer.append(frame)
        done.set()


def _reason(answer: frames.Answer, otherwise: str) -> str:
    return answer.message if isinstance(answer, frames.Failed) and answer.message else otherwise


async def _listen(channel: FrameChannel, store: PipePackStore, scope: trio.CancelScope) -> None:
    """Route the peer's answers; when the peer goes away, so does this job."""
    while (frame := await channel.receive()) is not None:
        store.answer(frames.decode_from_peer(frame))
    scope.cancel()


async def _backup(
    job: frames.BackupJob, codec: BlobCodec, store: PipePackStore, progress: ProgressFn
) -> frames.Outcome:
    catalog = Catalog(job.catalog)
    try:
        engine = BackupEngine(
            codec,
            catalog,
            store,
            # Inline for the many small steps: handing each to a thread cost more than
            # it saved. A big file's chunks go to a worker thread: reading, cutting,
            # hashing and sealing one lets go of the interpreter lock a few times per
            # MiB, and the event loop feeds the pipe meanwhile (decision 0058).
            run_sync=inline,
            work_sync=to_thread,
            progress=progress,
            excludes=job.excludes,
            parallel_uploads=job.parallel_uploads,
        )
        try:
            snapshot = await engine.run(
                list(job.paths), host=job.host, tags=job.tags, parent=job.parent
            )
        except P2PBackupError as exc:
            return frames.Outcome(error=str(exc), stats=engine.stats.as_dict())
        return frames.Outcome(snapshot=snapshot, stats=engine.stats.as_dict())
    finally:
        catalog.close()


async def _restore(
    job: frames.RestoreJob, codec: BlobCodec, store: PipePackStore, progress: ProgressFn
) -> frames.Outcome:
    # The folder walk's many small steps inline; each pack's hash, opening and writes
    # (C code and system calls that let go of the interpreter lock) in a worker, so
    # that they overlap one another and the reading of the next pack off the pipe.
    engine = RestoreEngine(codec, store, run_sync=inline, progress=progress, pack_sync=to_thread)
    try:
        stats = await engine.run(
            job.snapshot,
            job.target,
            job.includes,
            index_blobs=job.index_blobs,
            released=job.released,
        )
    except P2PBackupError as exc:
        return frames.Outcome(error=str(exc))
    return frames.Outcome(stats=stats.as_dict())


async def _run_job(
    start: frames.Start, store: PipePackStore, progress: ProgressFn
) -> frames.Outcome:
    codec = BlobCodec(OwnerKeys.from_master(start.master))
    job = start.job
    if isinstance(job, frames.BackupJob):
        return await _backup(job, codec, store, progress)
    return await _restore(job, codec, store, progress)


async def run_child(channel: FrameChannel) -> None:
    frame = await channel.receive()
    if frame is None:
        return
    start = frames.Start.decode(frame)
    before = resource.getrusage(resource.RUSAGE_SELF)
    store = PipePackStore(channel)

    async def progress(stats: dict[str, Any]) -> None:
        await channel.send(frames.Report(stats).encode())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_listen, channel, store, nursery.cancel_scope)
        try:
            result = await _run_job(start, store, progress)
        except Exception as exc:
            line, trace = _failure(exc, start)
            result = frames.Outcome(error=line, trace=trace)
        result.process = _usage(before)
        await channel.send(result.encode())
        nursery.cancel_scope.cancel()


def _failure(caught: Exception, start: frames.Start) -> tuple[str, str | None]:
    """One line for an error that ended the job, and a bug's traceback for the peer's
    log: a full disk says where (the catalog's disk is the owner's home); a system error
    on the user's files (a target under a read-only folder, a path that vanished) its
    path and reason; the project's own errors their message."""
    job = start.job
    if disk_full(caught):
        where = job.catalog.parent if isinstance(job, frames.BackupJob) else job.target
        return full_disk_line(where), None
    exc = sole_error(caught)
    if isinstance(exc, OSError):
        return os_error_line(exc), None
    if isinstance(exc, P2PBackupError):
        return str(exc), None
    trace = "".join(traceback.format_exception(caught))  # logged by the peer
    kind = "backup" if isinstance(job, frames.BackupJob) else "restore"
    return f"the {kind} process failed ({type(exc).__name__}: {exc}); see the peer's log", trace


def _usage(before: resource.struct_rusage) -> dict[str, Any]:
    """What the job cost this process since `before`."""
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "peak_rss_kib": _peak_rss_kib(after),
        "cpu_seconds": round(user + system, 3),
        # Apart, because a restore's kernel time (creating files) swings tenfold on
        # a shared machine while its own work does not.
        "user_seconds": round(user, 3),
        "system_seconds": round(system, 3),
        # Each fault on a fresh page costs kernel time: a pack held too briefly
        # shows here before it shows anywhere else.
        "minor_faults": after.ru_minflt - before.ru_minflt,
    }


def _peak_rss_kib(usage: resource.struct_rusage) -> int:
    """This process's own peak resident set. Linux carries `ru_maxrss` over an exec
    from the process that forked: the peer's whole heap, whatever the job used. The
    high-water mark of this process's own memory (VmHWM) starts at the exec."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return usage.ru_maxrss


async def _stop_on_term(job: trio.CancelScope) -> None:
    """The peer stops a job it no longer wants (its client hung up, the peer stops) with
    SIGTERM: cancel it, so that it cleans up (a restore removes the files it had begun)."""
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            job.cancel()
            return


def main() -> None:
    # A Ctrl-C at a terminal reaches every process of a foreground `serve`: this one
    # stops when its peer tells it to (`_stop_on_term`), cleaning up, not mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Standard output is the pipe: anything else printed goes to standard error.
    frames_out = os.dup(1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    # The job allocates millions of small objects and frees nearly all of them by
    # reference counting; the cycle collector's default pace spent about a twentieth
    # of a first backup walking objects that live as long as the process (modules,
    # the catalog's statements) or die young anyway.
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)
    keep_freed_pages()  # packs of 4 MiB cross the pipe both ways: decision 0013

    async def serve() -> None:
        frames_in = trio.lowlevel.FdStream(os.dup(0))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_term, nursery.cancel_scope)
            await run_child(FrameChannel(frames_in, trio.lowlevel.FdStream(frames_out)))
            nursery.cancel_scope.cancel()

    try:
        trio.run(serve)
    except KeyboardInterrupt:
        sys.exit(130)
    # The job is over and its files are closed; the peer waits for this process to
    # end. Tearing down the interpreter's objects one by one took 50-70 ms of that
    # wait after a backup of 8,000 files: skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
