"""What only the on-disk store must survive: restarts, crashes, bit rot, a second process."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from p2pbackup.store import FileShareStore, StoreFull, StoreLocked, framing, layout
from p2pbackup.store.admission import digest_of
from p2pbackup.store.file_store import DISK_RESERVE
from tests.store.helpers import OWNER_A, OWNER_B, pack

REPO = Path(__file__).resolve().parents[2]


def stray_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "shares").rglob("*") if p.is_file())


def test_layout_and_wal(tmp_path: Path) -> None:
    with FileShareStore(tmp_path, 1000) as store:
        store.put(pack(1), 7, b"data", b"d", OWNER_A, 10, 0)
        hexid = pack(1).hex()
        path = tmp_path / "shares" / hexid[:2] / hexid[2:4] / f"{hexid}.7.{OWNER_A.hex()}"
        assert store.path_of(pack(1), 7, OWNER_A) == path
        assert path.read_bytes().startswith(framing.MAGIC)
        assert path.read_bytes().endswith(b"data")
        assert stray_files(tmp_path) == [path]
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT size, owner, digest FROM shares").fetchone()
    assert row == (4, OWNER_A, digest_of(b"data"))
    db.close()


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    with FileShareStore(tmp_path, 10_000) as store:
        for n in range(5):
            store.put(pack(n), n, bytes([n]) * (100 + n), b"desc%d" % n, OWNER_A, 50 + n, n)
        store.delete(pack(4), 4, OWNER_A)
        listed = list(store.list_shares())
        used = store.used_bytes
    with FileShareStore(tmp_path, 10_000) as store:
        assert list(store.list_shares()) == listed
        assert store.used_bytes == used == sum(100 + n for n in range(4))
        for n in range(4):
            got = store.get(pack(n), n, OWNER_A)
            assert got is not None
            assert (got.data, got.descriptor, got.lease_expiry, got.stored_at) == (
                bytes([n]) * (100 + n),
                b"desc%d" % n,
                50 + n,
                n,
            )
        assert store.stats()["recovered_orphans_deleted"] == 0


def test_crash_leftovers_are_cleaned_on_open(tmp_path: Path) -> None:
    with FileShareStore(tmp_path, 10_000) as store:
        store.put(pack(1), 0, b"kept", b"d", OWNER_A, 10, 0)
        store.put(pack(2), 0, b"row without file", b"d", OWNER_A, 10, 0)
        store.put(pack(3), 0, b"resized", b"d", OWNER_A, 10, 0)
        lost = store.path_of(pack(2), 0, OWNER_A)
        resized = store.path_of(pack(3), 0, OWNER_A)
        # A file whose row never committed (killed between rename and commit).
        orphan = store.path_of(pack(4), 1, OWNER_A)
        orphan.parent.mkdir(parents=True)
        orphan.write_bytes(b"orphan")
        # A temp file from a write that never reached its rename.
        temp = lost.parent / f".{lost.name}.abc123.tmp"
        temp.write_bytes(b"half a sh")
        unknown = tmp_path / "shares" / "README"
        unknown.write_text("not ours")
    lost.unlink()
    resized.write_bytes(b"resized and longer")

    with FileShareStore(tmp_path, 10_000) as store:
        assert [(p, i) for p, i, _, _, _ in store.list_shares()] == [(pack(1), 0)]
        assert store.used_bytes == 4
        assert not orphan.exists()
        assert not temp.exists()
        assert not resized.exists()
        assert unknown.exists()  # never delete what we did not write
        stats = store.stats()
        assert stats["recovered_orphans_deleted"] == 1
        assert stats["recovered_temps_removed"] == 1
        assert stats["recovered_rows_dropped"] == 2
        got = store.get(pack(1), 0, OWNER_A)
        assert got is not None and got.data == b"kept"


def test_bit_rot_is_never_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with FileShareStore(tmp_path, 10_000) as store:
        store.put(pack(1), 2, b"A" * 64, b"d", OWNER_A, 10, 0)
        store.put(pack(2), 0, b"B" * 64, b"d", OWNER_A, 10, 0)
        path = store.path_of(pack(1), 2, OWNER_A)
        rotted = bytearray(path.read_bytes())
        rotted[-17] ^= 0x01
        path.write_bytes(bytes(rotted))
        assert store.has(pack(1), 2, OWNER_A)  # cheap check: not yet noticed
        assert store.get(pack(1), 2, OWNER_A) is None
        assert "corrupt" in caplog.text
        assert not store.has(pack(1), 2, OWNER_A)
        assert not path.exists()
        assert store.used_bytes == 64
        assert store.stats()["corrupt_dropped"] == 1
        got = store.get(pack(2), 0, OWNER_A)
        assert got is not None and got.data == b"B" * 64
    with FileShareStore(tmp_path, 10_000) as store:
        assert not store.has(pack(1), 2, OWNER_A)


def test_identical_reput_heals_a_rotted_file(tmp_path: Path) -> None:
    with FileShareStore(tmp_path, 100) as store:
        store.put(pack(1), 0, b"C" * 64, b"d", OWNER_A, 10, 0)
        path = store.path_of(pack(1), 0, OWNER_A)
        path.write_bytes(b"D" * 64)
        store.put(pack(1), 0, b"C" * 64, b"d", OWNER_A, 10, 0)
        got = store.get(pack(1), 0, OWNER_A)
        assert got is not None and got.data == b"C" * 64
        assert store.used_bytes == 64


def test_a_second_open_is_refused(tmp_path: Path) -> None:
    store = FileShareStore(tmp_path, 100)
    with pytest.raises(StoreLocked, match="in use"):
        FileShareStore(tmp_path, 100)
    store.close()
    store.close()
    FileShareStore(tmp_path, 100).close()


def test_concurrent_threads(tmp_path: Path) -> None:
    """trio.to_thread may call from several threads at once."""
    with FileShareStore(tmp_path, 10**6) as store:

        def worker(owner: bytes, base: int) -> None:
            for n in range(base, base + 20):
                store.put(pack(n), 0, bytes([n % 256]) * 500, b"d", owner, 10, 0)
                assert store.get(pack(n), 0, owner) is not None

        threads = [
            threading.Thread(target=worker, args=(owner, base))
            for owner, base in ((OWNER_A, 0), (OWNER_B, 100), (OWNER_A, 200), (OWNER_B, 300))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.stats()["shares"] == 80
        assert store.used_bytes == 80 * 500


def test_new_shares_wait_for_the_disk_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shares of several packs arrive at a holder at once; one put's fsync must not hold
    up the others (each would otherwise wait for every earlier one's journal commit)."""
    both_writing = threading.Barrier(2, timeout=10)
    write = layout.write_new

    def write_when_both_are_writing(path: Path, data: bytes, head: bytes = b"") -> None:
        both_writing.wait()  # broken after 10 s if the puts are serialised
        write(path, data, head=head)

    monkeypatch.setattr(layout, "write_new", write_when_both_are_writing)
    errors: list[BaseException] = []
    with FileShareStore(tmp_path, 10**6) as store:

        def put(n: int) -> None:
            try:
                store.put(pack(n), 0, bytes([n]) * 100, b"d", OWNER_A, 10, 0)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=put, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [store.get(pack(n), 0, OWNER_A) is not None for n in (1, 2)] == [True, True]
        assert store.used_bytes == 200


def test_the_same_share_put_twice_at_once_is_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    write = layout.write_new

    def slow_write(path: Path, data: bytes, head: bytes = b"") -> None:
        release.wait(10)
        write(path, data, head=head)

    monkeypatch.setattr(layout, "write_new", slow_write)
    with FileShareStore(tmp_path, 150) as store:
        first = threading.Thread(
            target=store.put, args=(pack(1), 0, b"x" * 100, b"d", OWNER_A, 10, 0)
        )
        second = threading.Thread(
            target=store.put, args=(pack(1), 0, b"x" * 100, b"d", OWNER_A, 20, 0)
        )
        first.start()
        time.sleep(0.1)
        second.start()
        time.sleep(0.2)
        assert second.is_alive()  # waiting for the first, not writing beside it
        release.set()
        first.join()
        second.join()
        assert store.used_bytes == 100 and store.stats()["shares"] == 1
        assert store.get(pack(1), 0, OWNER_A).lease_expiry == 20  # type: ignore[union-attr]
    assert stray_files(tmp_path) == [store.path_of(pack(1), 0, OWNER_A)]


def test_a_failed_write_leaves_nothing_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_write(path: Path, data: bytes, head: bytes = b"") -> None:
        raise OSError(28, "No space left on device")

    with FileShareStore(tmp_path, 150) as store:
        monkeypatch.setattr(layout, "write_new", failing_write)
        # A full disk is a refusal the owner is told, not a fault.
        with pytest.raises(StoreFull, match="disk full"):
            store.put(pack(1), 0, b"x" * 100, b"d", OWNER_A, 10, 0)
        assert store.used_bytes == 0 and not store.has(pack(1), 0, OWNER_A)
        assert stray_files(tmp_path) == []
        monkeypatch.undo()
        store.put(pack(1), 0, b"x" * 100, b"d", OWNER_A, 10, 0)  # the space is still free
        assert store.used_bytes == 100


_CHILD = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from p2pbackup.store import FileShareStore

    store = FileShareStore(Path(sys.argv[1]), 10**9)
    n = 0
    while True:
        pack_id = hashlib.blake2b(n.to_bytes(8, "big"), digest_size=20).digest()
        data = hashlib.shake_256(pack_id).digest(100_000 + n % 997)
        store.put(pack_id, n % 255, data, b"desc", b"O" * 32, 10**9, n)
        print(n, flush=True)
        n += 1
    """
)


def test_kill_9_mid_puts_reopens_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "store"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if int(line) >= 20:
                break
        # Killing right after a line arrives would always land between two puts;
        # letting it run on for a while lands the signal at an arbitrary point.
        time.sleep(random.uniform(0.05, 0.25))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        rest, err = child.communicate(timeout=10)
    # The child kept putting until the signal landed; its last printed line is the
    # last put it saw finish.
    acknowledged = max([20, *(int(line) for line in rest.split())])
    assert child.returncode == -signal.SIGKILL, err

    with FileShareStore(root, 10**9) as store:
        listed = list(store.list_shares())
        held = {p: i for p, i, _, _, _ in listed}
        # Every put the child reported done survived; at most the one in flight did not.
        for n in range(acknowledged + 1):
            assert held.get(pack(n)) == n % 255
        # The put in flight may have committed without printing: at most one more.
        assert len(listed) - (acknowledged + 1) in (0, 1)
        for pack_id, index, size, _, owner in listed:
            got = store.get(pack_id, index, owner)
            assert got is not None, "an indexed share must be readable"
            assert got.data == hashlib.shake_256(pack_id).digest(size)
        assert store.used_bytes == sum(size for _, _, size, _, _ in listed)
        on_disk = {p.name for p in stray_files(root)}
        assert on_disk == {f"{p.hex()}.{i}.{o.hex()}" for p, i, _, _, o in listed}


def test_a_wrong_root_from_the_caller_is_never_served(tmp_path: Path) -> None:
    with FileShareStore(tmp_path, 1000) as store:
        store.put(pack(1), 0, b"good", b"d", OWNER_A, 10, 0, root=digest_of(b"good"))
        store.put(pack(2), 0, b"lied about", b"d", OWNER_A, 10, 0, root=digest_of(b"other"))
        assert store.get(pack(1), 0, OWNER_A) is not None
        assert store.get(pack(2), 0, OWNER_A) is None  # dropped as corrupt, so repair sees it gone
        assert store.indices(pack(2), OWNER_A) == []


def test_shares_stored_with_a_flat_digest_are_still_checked(tmp_path: Path) -> None:
    """An index written before digests were Merkle roots: its rows keep their BLAKE2b of
    the bytes, are served while the bytes match, and dropped once they do not."""
    with FileShareStore(tmp_path, 1000) as store:
        for n in (1, 2):
            store.put(pack(n), 0, b"old share %d" % n, b"d", OWNER_A, 10, 0)
            # Files were headerless then.
            store.path_of(pack(n), 0, OWNER_A).write_bytes(b"old share %d" % n)
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    db.executescript(
        "CREATE TABLE old AS SELECT pack_id, idx, size, owner, lease_expiry, stored_at, "
        "descriptor, digest FROM shares; DROP TABLE shares; ALTER TABLE old RENAME TO shares;"
    )
    for n in (1, 2):
        flat = hashlib.blake2b(b"old share %d" % n, digest_size=32).digest()
        db.execute("UPDATE shares SET digest = ? WHERE pack_id = ?", (flat, pack(n)))
    db.commit()
    db.close()
    with FileShareStore(tmp_path, 1000) as store:
        store.path_of(pack(2), 0, OWNER_A).write_bytes(b"old share X")  # rotted, same size
        got = store.get(pack(1), 0, OWNER_A)
        assert got is not None and got.data == b"old share 1"
        assert store.get(pack(2), 0, OWNER_A) is None
        # Put again (a repair): same bytes, no second copy of the space.
        store.put(pack(1), 0, b"old share 1", b"d", OWNER_A, 20, 0)
        assert store.used_bytes == len(b"old share 1")
        assert store.get(pack(1), 0, OWNER_A) is not None


def test_free_space_is_the_capacity_or_the_disk_whichever_is_less(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FileShareStore(tmp_path, 10**9) as store:
        monkeypatch.setattr(store, "disk_free", lambda: DISK_RESERVE + 500)
        assert store.free_bytes == 500 and store.stats()["free_bytes"] == 500
        monkeypatch.setattr(store, "disk_free", lambda: 10**12)
        assert store.free_bytes == 10**9


def test_a_share_the_disk_cannot_hold_is_refused_before_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FileShareStore(tmp_path, 10**9) as store:
        monkeypatch.setattr(store, "disk_free", lambda: DISK_RESERVE + 50)
        with pytest.raises(StoreFull, match="disk full: 50 B free on this peer's disk"):
            store.put(pack(1), 0, b"x" * 100, b"d", OWNER_A, 10, 0)
        assert store.used_bytes == 0 and stray_files(tmp_path) == []
        store.put(pack(2), 0, b"x" * 40, b"d", OWNER_A, 10, 0)
        assert store.has(pack(2), 0, OWNER_A)


def _resident_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache, as util-linux's fincore counts them."""
    done = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


def test_a_stored_share_leaves_the_page_cache(tmp_path: Path) -> None:
    if shutil.which("fincore") is None:
        pytest.skip("needs fincore (Debian package util-linux)")
    share = os.urandom(1 << 20)
    kept = tmp_path / "kept"
    kept.write_bytes(share)
    probe = tmp_path / "probe"
    probe.write_bytes(share)
    with probe.open("rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if _resident_bytes(probe) or not _resident_bytes(kept):
        pytest.skip(f"the file system under {tmp_path} does not let cached pages go")
    with FileShareStore(tmp_path / "store", 1 << 30) as store:
        store.put(pack(1), 2, share, b"d", OWNER_A, 10, 0)
        path = store.path_of(pack(1), 2, OWNER_A)
        assert _resident_bytes(path) == 0
        assert store.get(pack(1), 2, OWNER_A).data == share  # type: ignore[union-attr]
