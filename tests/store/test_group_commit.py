"""Index rows of shares that land together commit together, and none is acknowledged
before its own commit; a crash while a new share's file is written loses only it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.store import FileShareStore
from p2pbackup.store.group_commit import GroupCommit

REPO = Path(__file__).resolve().parents[2]
OWNER = b"O" * 32


class Committer:
    """A commit that holds its first batch until told, and fails any batch with "bad"."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: list[str]) -> None:
        if not self.batches:
            self.started.set()
            assert self.release.wait(10)
        self.batches.append(batch)
        if "bad" in batch:
            raise ValueError("bad row")


def add_in_thread(group: GroupCommit[str], item: str, done: dict[str, str]) -> threading.Thread:
    def run() -> None:
        try:
            group.add(item)
            done[item] = "ok"
        except ValueError:
            done[item] = "refused"

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_rows_arriving_during_a_commit_share_the_next_one() -> None:
    lock = threading.RLock()
    commit = Committer()
    group: GroupCommit[str] = GroupCommit(lock, commit)
    done: dict[str, str] = {}
    first = add_in_thread(group, "a", done)
    assert commit.started.wait(10)
    others = [add_in_thread(group, item, done) for item in ("b", "c", "bad")]
    while group.queued < 3:  # the three wait behind the commit in progress
        threading.Event().wait(0.005)
    assert done == {}  # none is acknowledged before a commit holds its row
    commit.release.set()
    for thread in [first, *others]:
        thread.join(10)
    # One commit for the first, one for the three that queued meanwhile; that one
    # failed as a whole, so each was tried alone and only the bad row is refused.
    assert commit.batches[:2] == [["a"], ["b", "c", "bad"]]
    assert sorted(commit.batches[2:]) == [["b"], ["bad"], ["c"]]
    assert done == {"a": "ok", "b": "ok", "c": "ok", "bad": "refused"}
    assert group.queued == 0


def test_an_interrupted_commit_acknowledges_none_of_its_rows() -> None:
    def interrupted(batch: list[str]) -> None:
        raise KeyboardInterrupt

    group: GroupCommit[str] = GroupCommit(threading.RLock(), interrupted)
    with pytest.raises(KeyboardInterrupt):
        group.add("a")
    assert group.queued == 0


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from p2pbackup.store import FileShareStore, layout

    def killed_halfway(path, data, head=b""):
        with open(path, "wb") as handle:  # the new share's own name, half written
            handle.write(head + data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    store = FileShareStore(Path(sys.argv[1]), 10**9)
    store.put(bytes(20), 0, b"k" * 5000, b"desc", b"O" * 32, 10**9, 1)
    layout.write_new = killed_halfway
    store.put(bytes([1]) * 20, 0, b"x" * 5000, b"desc", b"O" * 32, 10**9, 1)
    """
)


def test_a_kill_while_a_new_share_is_written_leaves_the_others_and_no_trace(
    tmp_path: Path,
) -> None:
    """New shares are written under their own name, not renamed into place: a torn one
    has no row, does not verify, and opening the store deletes it."""
    root = tmp_path / "store"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root)], env=env, capture_output=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with FileShareStore(root, 10**9) as store:
        assert store.recovered["orphans_deleted"] == 1
        assert [info.pack_id for info in store.list_shares()] == [bytes(20)]
        assert not store.path_of(bytes([1]) * 20, 0, OWNER).exists()
        store.put(bytes([1]) * 20, 0, b"x" * 5000, b"desc", OWNER, 10**9, 2)
        assert store.get(bytes([1]) * 20, 0, OWNER) is not None


def test_puts_and_audits_go_on_while_a_commit_syncs(tmp_path: Path) -> None:
    """A commit holds the index's writing connection, not the store's lock: audits,
    fetches and lookups read the committed rows beside it, and another put writes its
    file and queues its row meanwhile (decision 0057)."""
    pack_a, pack_b, pack_c = (bytes([n]) * 20 for n in (1, 2, 3))
    with FileShareStore(tmp_path, 2**30) as store:
        store.put(pack_a, 0, b"a" * 70_000, b"d", OWNER, 10, 0)
        index = store._index
        insert = index.insert
        entered, release = threading.Event(), threading.Event()

        def held_insert(*args: Any) -> None:
            entered.set()
            assert release.wait(10)
            insert(*args)

        index.insert = held_insert  # type: ignore[method-assign,assignment]
        first = threading.Thread(target=store.put, args=(pack_b, 0, b"b" * 10, b"d", OWNER, 10, 0))
        first.start()
        try:
            assert entered.wait(10)  # the commit of pack_b's row is under way
            assert store._mutex.acquire(blocking=False)
            store._mutex.release()
            assert store.prove(pack_a, 0, OWNER, 1) is not None
            served = store.serve(pack_a, 0, OWNER)
            assert served is not None and served.data == b"a" * 70_000
            assert store.lease(pack_a, 0, OWNER) is not None
            assert store.indices(pack_a, OWNER) == [0] and store.has(pack_a, 0, OWNER)
            assert not store.has(pack_b, 0, OWNER)  # not acknowledged, not yet seen
            second = threading.Thread(
                target=store.put, args=(pack_c, 0, b"c" * 10, b"d", OWNER, 10, 0)
            )
            second.start()
            while store._rows.queued < 1:  # its file is durable, its row waits
                threading.Event().wait(0.005)
            assert store.path_of(pack_c, 0, OWNER).exists()
        finally:
            release.set()
            first.join(10)
        second.join(10)
        assert store.has(pack_b, 0, OWNER) and store.has(pack_c, 0, OWNER)
