"""The backup engine in a process of its own, started by the owner's peer for each backup.

Run as `python -m p2pbackup.peer.backup_child`; standard input and output are
the pipe to the peer (`backup_process` is the other end). The child walks,
reads, chunks, seals and packs with the very same `BackupEngine` the
simulator runs in-process; each finished pack goes to the peer, which
erasure-codes and places it and answers with a receipt. So the CPU-heavy
per-file work has a core and an interpreter lock of its own, while the peer's
event loop keeps serving the mesh.

Frames from the peer: `start` (once), then `placed` or `failed` per pack.
Frames to the peer: `put` per pack, `progress`, and finally `done` or `error`.
The child stops as soon as its standard input closes: a peer that died or
gave up takes its backup with it.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.backup.packstore import PackReceipt
from p2pbackup.backup.snapshot import Snapshot
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.offload import inline
from p2pbackup.peer.pipe_frames import FrameChannel


class PipePackStore:
    """A `PackStore` whose puts the parent peer carries out."""

    def __init__(self, channel: FrameChannel) -> None:
        self.channel = channel
        self._next_id = 0
        self._waiting: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        self._next_id += 1
        request = self._next_id
        done, answer = trio.Event(), list[dict[str, Any]]()
        self._waiting[request] = (done, answer)
        try:
            await self.channel.send({"op": "put", "id": request, "pack_id": pack_id, "data": data})
            await done.wait()
        finally:
            del self._waiting[request]
        frame = answer[0]
        if frame["op"] == "failed":
            raise P2PBackupError(str(frame.get("message", "the peer could not place a pack")))
        pid, k, n, placed, sent = frame["receipt"]
        return PackReceipt(bytes(pid), int(k), int(n), int(placed), int(sent))

    async def get(self, pack_id: bytes) -> bytes:
        raise P2PBackupError("the backup process only writes packs")

    def answer(self, frame: dict[str, Any]) -> None:
        waiting = self._waiting.get(frame.get("id", -1))
        if waiting is None:
            raise P2PBackupError(f"an answer for no pack in flight: {frame.get('id')!r}")
        done, answer = waiting
        answer.append(frame)
        done.set()


async def _listen(channel: FrameChannel, store: PipePackStore, scope: trio.CancelScope) -> None:
    """Route the peer's answers; when the peer goes away, so does this backup."""
    while (frame := await channel.receive()) is not None:
        if frame["op"] in ("placed", "failed"):
            store.answer(frame)
        else:
            raise P2PBackupError(f"unexpected frame from the peer: {frame['op']}")
    scope.cancel()


async def run_child(channel: FrameChannel) -> None:
    start = await channel.receive()
    if start is None:
        return
    if start["op"] != "start":
        raise P2PBackupError(f"the backup process expected `start`, not {start['op']}")
    cpu_before = _cpu_seconds()
    keys = OwnerKeys.from_master(bytes(start["master"]))
    catalog = Catalog(Path(start["catalog"]))
    try:
        store = PipePackStore(channel)

        async def progress(stats: dict[str, Any]) -> None:
            await channel.send({"op": "progress", "stats": stats})

        engine = BackupEngine(
            BlobCodec(keys),
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
        result: dict[str, Any]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_listen, channel, store, nursery.cancel_scope)
            try:
                paths, tags = list(start["paths"]), tuple(start["tags"])
                snapshot = await engine.run(paths, host=start["host"], tags=tags, parent=parent)
                result = {"op": "done", "snapshot": snapshot.to_wire()}
            except P2PBackupError as exc:
                result = {"op": "error", "message": str(exc)}
            except Exception as exc:  # a bug: its traceback goes to the peer's log
                traceback.print_exc(file=sys.stderr)
                result = {"op": "error", "message": f"the backup engine failed: {exc!r}"}
            result["stats"] = engine.stats.as_dict()
            result["process"] = {
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "cpu_seconds": round(_cpu_seconds() - cpu_before, 3),
            }
            await channel.send(result)
            nursery.cancel_scope.cancel()
    finally:
        catalog.close()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    # Standard output is the pipe: anything else printed goes to standard error.
    frames_out = os.dup(1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    async def serve() -> None:
        frames_in = trio.lowlevel.FdStream(os.dup(0))
        await run_child(FrameChannel(frames_in, trio.lowlevel.FdStream(frames_out)))

    try:
        trio.run(serve)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
