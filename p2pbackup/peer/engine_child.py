"""A backup or a restore in a process of its own, started by the owner's peer for each.

Run as `python -m p2pbackup.peer.engine_child`; standard input and output are
the pipe to the peer (`engine_process` is the other end). The child runs the
very same `BackupEngine` or `RestoreEngine` the simulator runs in-process,
with a pack store whose puts and gets the peer carries out: the peer
erasure-codes and places each finished pack, or gathers and rebuilds a pack
the restore asks for. So the per-file work (reading, hashing, sealing,
opening, writing) has a core and an interpreter lock of its own, while the
peer's event loop keeps serving the mesh.

Frames from the peer: `start` (once, naming the job), then per pack `placed`,
`pack` or `failed`. Frames to the peer: `put` and `get` per pack, `progress`,
and finally `done` or `error`. The child stops as soon as its standard input
closes: a peer that died or gave up takes its job with it.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.backup.restore import RestoreEngine
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.base.offload import inline
from p2pbackup.codec.packstore import PackReceipt, PackUnavailable
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.heap import keep_freed_pages
from p2pbackup.peer.pipe_frames import FrameChannel

Job = Callable[
    [dict[str, Any], BlobCodec, "PipePackStore", "ProgressFn"], Awaitable[dict[str, Any]]
]
ProgressFn = Callable[[dict[str, Any]], Awaitable[None]]


class PipePackStore:
    """A `PackStore` whose puts and gets the parent peer carries out."""

    def __init__(self, channel: FrameChannel) -> None:
        self.channel = channel
        self._next_id = 0
        self._waiting: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}
        # Asked, then given up on (a failed upload cancels the others): the peer's
        # answer may still come and is dropped.
        self._abandoned: set[int] = set()

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        frame = await self._ask({"op": "put", "pack_id": pack_id, "data": data})
        if frame["op"] != "placed":
            raise P2PBackupError(str(frame.get("message", "the peer could not place a pack")))
        pid, k, n, placed, sent = frame["receipt"]
        return PackReceipt(bytes(pid), int(k), int(n), int(placed), int(sent))

    async def get(self, pack_id: bytes) -> bytes:
        frame = await self._ask({"op": "get", "pack_id": pack_id})
        if frame["op"] != "pack":
            raise PackUnavailable(str(frame.get("message", "the peer could not fetch a pack")))
        return bytes(frame["data"])

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        request["id"] = self._next_id
        done, answer = trio.Event(), list[dict[str, Any]]()
        self._waiting[self._next_id] = (done, answer)
        try:
            await self.channel.send(request)
            await done.wait()
        finally:
            del self._waiting[request["id"]]
            if not answer:
                self._abandoned.add(request["id"])
        return answer[0]

    def answer(self, frame: dict[str, Any]) -> None:
        key = frame.get("id", -1)
        if key in self._abandoned:
            self._abandoned.discard(key)
            return
        waiting = self._waiting.get(key)
        if waiting is None:
            raise P2PBackupError(f"an answer for no pack in flight: {key!r}")
        done, answer = waiting
        answer.append(frame)
        done.set()


async def _listen(channel: FrameChannel, store: PipePackStore, scope: trio.CancelScope) -> None:
    """Route the peer's answers; when the peer goes away, so does this job."""
    while (frame := await channel.receive()) is not None:
        if frame["op"] in ("placed", "pack", "failed"):
            store.answer(frame)
        else:
            raise P2PBackupError(f"unexpected frame from the peer: {frame['op']}")
    scope.cancel()


async def _backup(
    start: dict[str, Any], codec: BlobCodec, store: PipePackStore, progress: ProgressFn
) -> dict[str, Any]:
    catalog = Catalog(Path(start["catalog"]))
    try:
        engine = BackupEngine(
            codec,
            catalog,
            store,
            # Inline: with the core to itself, the engine loses more to handing the
            # lock to worker threads than it gains from overlapping their reads.
            run_sync=inline,
            progress=progress,
            excludes=tuple(start["excludes"]),
            parallel_uploads=int(start["parallel_uploads"]),
        )
        parent = Snapshot.from_wire(start["parent"]) if start.get("parent") else None
        try:
            paths, tags = list(start["paths"]), tuple(start["tags"])
            snapshot = await engine.run(paths, host=start["host"], tags=tags, parent=parent)
        except P2PBackupError as exc:
            return {"op": "error", "message": str(exc), "stats": engine.stats.as_dict()}
        return {"op": "done", "snapshot": snapshot.to_wire(), "stats": engine.stats.as_dict()}
    finally:
        catalog.close()


async def _restore(
    start: dict[str, Any], codec: BlobCodec, store: PipePackStore, progress: ProgressFn
) -> dict[str, Any]:
    engine = RestoreEngine(codec, store, run_sync=inline, progress=progress)
    blobs = start.get("index_blobs")
    try:
        stats = await engine.run(
            Snapshot.from_wire(start["snapshot"]),
            start["target"],
            tuple(start["includes"]),
            index_blobs=None if blobs is None else tuple(Locator.from_wire(b) for b in blobs),
            released=frozenset(bytes(p) for p in start["released"]),
        )
    except P2PBackupError as exc:
        return {"op": "error", "message": str(exc)}
    return {"op": "done", "stats": stats.as_dict()}


JOBS: dict[str, Job] = {"backup": _backup, "restore": _restore}


async def run_child(channel: FrameChannel) -> None:
    start = await channel.receive()
    if start is None:
        return
    job = JOBS.get(str(start.get("job"))) if start["op"] == "start" else None
    if job is None:
        raise P2PBackupError(f"the engine process cannot run {start.get('job')!r}")
    before = resource.getrusage(resource.RUSAGE_SELF)
    store = PipePackStore(channel)

    async def progress(stats: dict[str, Any]) -> None:
        await channel.send({"op": "progress", "stats": stats})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_listen, channel, store, nursery.cancel_scope)
        codec = BlobCodec(OwnerKeys.from_master(bytes(start["master"])))
        try:
            result = await job(start, codec, store, progress)
        except Exception as exc:  # a bug: its traceback goes to the peer's log
            traceback.print_exc(file=sys.stderr)
            result = {"op": "error", "message": f"the {start['job']} process failed: {exc!r}"}
        after = resource.getrusage(resource.RUSAGE_SELF)
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        result["process"] = {
            "peak_rss_kib": after.ru_maxrss,
            "cpu_seconds": round(user + system, 3),
            # Apart, because a restore's kernel time (creating files) swings tenfold on
            # a shared machine while its own work does not.
            "user_seconds": round(user, 3),
            "system_seconds": round(system, 3),
            # Each fault on a fresh page costs kernel time: a pack held too briefly
            # shows here before it shows anywhere else.
            "minor_faults": after.ru_minflt - before.ru_minflt,
        }
        await channel.send(result)
        nursery.cancel_scope.cancel()


def main() -> None:
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
        await run_child(FrameChannel(frames_in, trio.lowlevel.FdStream(frames_out)))

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
