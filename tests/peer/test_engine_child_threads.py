"""The engine process reads, hashes and seals a big file's chunks on a worker thread,
and reads windows of small files on its event loop's thread (decision 0058)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from p2pbackup.backup import engine, scan
from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.codec.packstore import MemoryPackStore
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.peer import engine_child
from p2pbackup.peer import engine_frames as frames


async def test_a_big_files_chunks_leave_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # over the read-ahead's 1 MiB
    (src / "small.txt").write_bytes(b"a small file " * 100)
    threads: dict[str, set[str]] = {"chunks": set(), "windows": set()}

    def recorded(name: str, fn: Any) -> Any:
        def run(*args: Any) -> Any:
            threads[name].add(threading.current_thread().name)
            return fn(*args)

        return run

    monkeypatch.setattr(engine, "_next_with_id", recorded("chunks", engine._next_with_id))
    monkeypatch.setattr(scan, "prepare_files", recorded("windows", scan.prepare_files))
    job = frames.BackupJob(tmp_path / "catalog.db", (str(src),), "host")
    codec = BlobCodec(OwnerKeys.from_master(bytes(32)))

    async def progress(stats: dict[str, Any]) -> None:
        pass

    store = cast(engine_child.PipePackStore, MemoryPackStore())
    outcome = await engine_child._backup(job, codec, store, progress)
    assert outcome.error is None and outcome.snapshot is not None
    here = threading.current_thread().name
    assert threads["windows"] == {here}
    assert threads["chunks"] and here not in threads["chunks"]
