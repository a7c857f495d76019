"""Backups and restores in a child process: the same results as in-process, errors as
one line, no process left behind however it ends."""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import RACY_SECONDS
from p2pbackup.codec.packstore import MemoryPackStore, PackReceipt
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer import engine_process
from p2pbackup.peer.engine_child import PipePackStore
from p2pbackup.peer.engine_frames import BackupJob, RestoreJob, decode_from_peer
from p2pbackup.peer.engine_process import (
    EngineProcesses,
    run_backup_process,
    run_restore_process,
    start_frame,
)
from p2pbackup.peer.pipe_frames import FrameChannel
from tests.backup.fs import KEYS, build_tree, restorer, snapshot_of
from tests.peer.restarts import engine_children

pytestmark = pytest.mark.slow
RECEIPT = [bytes(32), 3, 10, 10, 40]


class Recorder:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    async def __call__(self, update: dict[str, Any]) -> None:
        self.updates.append(update)


class StallingStore:
    """Never answers a put: the backup waits on the peer, as on a slow mesh."""

    def __init__(self) -> None:
        self.asked = trio.Event()

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        self.asked.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        raise AssertionError("a backup does not read packs")


class RefusingStore:
    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        raise P2PBackupError("only 2 of the 7 peers needed took a share")

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        raise AssertionError("a backup does not read packs")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def child_pids() -> set[int]:
    """The engine processes this test process started and has not reaped."""
    return engine_children(os.getpid())


async def test_backup_in_a_process_restores_identical(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src, random.Random(4))
    await trio.sleep(RACY_SECONDS)  # a tree this new would not be remembered
    store = MemoryPackStore()
    progress = Recorder()
    job = BackupJob(tmp_path / "catalog.db", (str(src),), "test-host", ("t1",))
    snapshot, result = await run_backup_process(KEYS, job, store, progress)

    assert snapshot.tags == ("t1",) and snapshot.host == "test-host"
    assert result.stats["files"] == 9 and not result.stats["errors"]
    assert result.stats["packs"] == store.puts >= 2  # data, then the index
    assert result.process["peak_rss_kib"] > 10_000 and result.process["cpu_seconds"] > 0
    assert progress.updates and progress.updates[-1]["files"] == 9
    # The child wrote the catalog this peer goes on using.
    catalog = Catalog(tmp_path / "catalog.db")
    try:
        assert catalog.chunk_count() == result.stats["chunks_new"]
        assert list(catalog.index_blobs()) == list(snapshot.index)
    finally:
        catalog.close()
    out = tmp_path / "out"
    stats = await restorer(BlobCodec(KEYS), store).run(snapshot, out)
    assert stats.files_failed == 0
    assert snapshot_of(out / "src") == snapshot_of(src)
    assert child_pids() == set()

    # Restored in a child too: the same tree, and a subset by pattern.
    gets = store.gets
    restored = await run_restore_process(
        KEYS, RestoreJob(snapshot, tmp_path / "r1"), store, progress
    )
    assert restored.stats["files_restored"] == 9 and restored.stats["files_failed"] == 0
    assert store.gets > gets and restored.process["cpu_seconds"] > 0
    assert snapshot_of(tmp_path / "r1" / "src") == snapshot_of(src)
    subset = RestoreJob(snapshot, tmp_path / "r2", ("src/nested/*",))
    assert (await run_restore_process(KEYS, subset, store, progress)).stats["files_restored"] == 2
    assert sorted(p.name for p in (tmp_path / "r2").rglob("*") if p.is_file()) == [
        "leaf.txt",
        "mid.bin",
    ]

    # A second run, in a process held ready, sends nothing and names its parent.
    processes = EngineProcesses()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(processes.keep_one_ready)
        again = BackupJob(job.catalog, job.paths, job.host, parent=snapshot)
        later, second = await run_backup_process(KEYS, again, store, progress, processes)
        assert second.stats["files_unchanged"] == 9 and second.stats["chunks_new"] == 0
        assert later.parent == snapshot.snapshot_id
        with trio.fail_after(30):
            while processes._ready is None:  # the next one is started after the run
                await trio.sleep(0.05)
        assert len(child_pids()) == 1
        nursery.cancel_scope.cancel()
    assert child_pids() == set()


async def test_errors_come_back_as_one_line(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src, random.Random(5))
    job = BackupJob(tmp_path / "catalog.db", (str(src),), "h")
    with pytest.raises(P2PBackupError, match="only 2 of the 7 peers"):
        await run_backup_process(KEYS, job, RefusingStore(), Recorder())
    missing = BackupJob(tmp_path / "catalog.db", (str(tmp_path / "nope"),), "h")
    with pytest.raises(P2PBackupError, match="does not exist"):
        await run_backup_process(KEYS, missing, MemoryPackStore(), Recorder())
    assert child_pids() == set()


async def test_a_restore_missing_a_pack_restores_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src, random.Random(9))
    (src / "aa-big.bin").write_bytes(random.Random(10).randbytes(6 * 1024 * 1024))
    store = MemoryPackStore()
    job = BackupJob(tmp_path / "catalog.db", (str(src),), "h")
    snapshot, _ = await run_backup_process(KEYS, job, store, Recorder())
    first = next(iter(store.packs))  # file data only: folder lists are packed last
    del store.packs[first]
    out = tmp_path / "out"
    restored = await run_restore_process(KEYS, RestoreJob(snapshot, out), store, Recorder())
    failed = restored.stats["failures"]
    assert failed and restored.stats["files_failed"] == len(failed)
    assert all(first.hex()[:12] in f["reason"] for f in failed)
    assert restored.stats["files_restored"] == 10 - len(failed) >= 8
    assert (out / "src" / "tool.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert child_pids() == set()


async def test_a_child_that_cannot_start_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_process, "CHILD", [sys.executable, "-c", "raise SystemExit(3)"])
    job = BackupJob(tmp_path / "catalog.db", (str(tmp_path),), "h")
    with trio.fail_after(30), pytest.raises(P2PBackupError, match="exit status 3"):
        await run_backup_process(KEYS, job, MemoryPackStore(), Recorder())


async def test_a_dead_child_is_an_error_not_a_hang(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src, random.Random(6))
    store = StallingStore()
    job = BackupJob(tmp_path / "catalog.db", (str(src),), "h")

    async def kill_when_asked() -> None:
        await store.asked.wait()
        (pid,) = child_pids()
        os.kill(pid, signal.SIGKILL)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_when_asked)
            with pytest.raises(P2PBackupError, match="stopped before it finished"):
                await run_backup_process(KEYS, job, store, Recorder())
    assert child_pids() == set()


async def test_cancelling_the_backup_reaps_the_child(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src, random.Random(7))
    store = StallingStore()
    job = BackupJob(tmp_path / "catalog.db", (str(src),), "h")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_backup_process, KEYS, job, store, Recorder())
            await store.asked.wait()
            assert len(child_pids()) == 1
            nursery.cancel_scope.cancel()
    assert child_pids() == set()


async def test_child_stops_when_its_peer_goes_away(tmp_path: Path) -> None:
    """A peer killed outright closes the child's input: the child exits by itself, both
    while it waits to start and in the middle of a backup."""
    processes = EngineProcesses()
    idle = await processes.take()
    assert idle.stdin is not None
    await idle.stdin.aclose()
    with trio.fail_after(30):
        assert await idle.wait() == 0

    src = tmp_path / "src"
    build_tree(src, random.Random(8))
    busy = await processes.take()
    assert busy.stdin is not None and busy.stdout is not None
    channel = FrameChannel(busy.stdout, busy.stdin)
    job = BackupJob(tmp_path / "catalog.db", (str(src),), "h", parallel_uploads=1)
    await channel.send(start_frame(KEYS, job))
    with trio.fail_after(30):
        while (frame := await channel.receive()) is not None and frame["op"] != "put":
            pass
        await channel.close_send()  # the put is never answered
        assert await busy.wait() == 0
    await busy.stdout.aclose()
    assert not alive(busy.pid)


async def test_a_ctrl_c_is_for_the_peer_and_its_sigterm_stops_the_child() -> None:
    """A Ctrl-C reaches every process of a foreground `serve`: the child carries on
    (it printed a traceback) and stops, cleanly, when its peer sends SIGTERM."""
    processes = EngineProcesses()
    child = await processes.take()
    with trio.fail_after(30):  # until it ignores SIGINT, as the kernel tells
        while not _ignores(child.pid, signal.SIGINT):
            await trio.sleep(0.05)
    child.send_signal(signal.SIGINT)
    await trio.sleep(0.5)
    assert child.poll() is None
    child.terminate()
    with trio.fail_after(30):
        assert await child.wait() == 0
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            await stream.aclose()


def _ignores(pid: int, signum: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


class SentFrames:
    """The engine side of the pipe, keeping what it sends."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any], tail: bytes | bytearray | None = None) -> None:
        self.frames.append(frame if tail is None else {**frame, "tail": tail})


async def test_an_answer_to_a_request_given_up_on_is_dropped() -> None:
    """A failed upload cancels the others while the peer is still placing them: their
    answers must not bring the engine process down before it reports the failure."""
    channel = SentFrames()
    store = PipePackStore(channel)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.put, bytes(32), b"pack")
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    asked = channel.frames[0]["id"]
    store.answer(decode_from_peer({"op": "placed", "id": asked, "receipt": RECEIPT}))
    with pytest.raises(P2PBackupError, match="no pack in flight"):
        store.answer(decode_from_peer({"op": "placed", "id": asked + 1, "receipt": RECEIPT}))
