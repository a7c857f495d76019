"""A share file carries its owner's signed descriptor, so a file the index lost or
disagrees with is indexed again when it proves itself, and only then."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from p2pbackup.store import FileShareStore, framing
from p2pbackup.store.contract import ShareKey, StoredShare
from tests.crash.shares import HELD, REPLACEMENT, share
from tests.store.helpers import OWNER_B


def _put(store: FileShareStore, s: StoredShare) -> None:
    store.put(s.pack_id, s.index, s.data, s.descriptor, s.owner, s.lease_expiry, s.stored_at)


def _key(s: StoredShare) -> tuple[bytes, int, bytes]:
    return (s.pack_id, s.index, s.owner)


def _drop_rows(root: Path) -> None:
    """What a power cut did to the index under `synchronous=NORMAL`: rows gone."""
    db = sqlite3.connect(root / "index.sqlite3")
    db.execute("DELETE FROM shares")
    db.commit()
    db.close()


def test_a_file_without_a_row_that_verifies_is_indexed_again(tmp_path: Path) -> None:
    other = share(2, 2, lease=40)
    with FileShareStore(tmp_path, 10**6) as store:
        _put(store, HELD)
        _put(store, other)
    _drop_rows(tmp_path)
    with FileShareStore(tmp_path, 10**6) as store:
        assert store.stats()["recovered_reindexed"] == 2
        assert store.stats()["recovered_orphans_deleted"] == 0
        assert store.get(*_key(HELD)) == HELD
        assert store.get(*_key(other)) == other
        assert store.used_bytes == len(HELD.data) + len(other.data)
        assert store.expired(39) == [ShareKey(*_key(HELD))]


def test_a_file_that_does_not_verify_is_still_deleted(tmp_path: Path) -> None:
    """Bit rot in the data, a descriptor of another owner, or no header at all."""
    rotted, foreign, bare = share(2, 2), share(3, 3), share(4, 4)
    with FileShareStore(tmp_path, 10**6) as store:
        for s in (rotted, bare):
            _put(store, s)
        store.put(foreign.pack_id, 1, foreign.data, foreign.descriptor, OWNER_B, 10, 0)
        path = store.path_of(*_key(rotted))
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 1
        path.write_bytes(bytes(blob))
        store.path_of(*_key(bare)).write_bytes(bare.data)
    _drop_rows(tmp_path)
    with FileShareStore(tmp_path, 10**6) as store:
        assert store.stats()["recovered_reindexed"] == 0
        assert store.stats()["recovered_orphans_deleted"] == 3
        assert list(store.list_shares()) == []
        assert not any(p.is_file() for p in (tmp_path / "shares").rglob("*"))


def test_a_replacement_cut_before_its_row_serves_the_new_file(tmp_path: Path) -> None:
    """The new file landed, its row did not: the file is the share, by its own header."""
    with FileShareStore(tmp_path, 10**6) as store:
        _put(store, HELD)
        path = store.path_of(*_key(HELD))
        path.write_bytes(framing.header(REPLACEMENT) + REPLACEMENT.data)
    with FileShareStore(tmp_path, 10**6) as store:
        assert store.stats()["recovered_reindexed"] == 1
        assert store.get(*_key(HELD)) == REPLACEMENT
        assert store.used_bytes == len(REPLACEMENT.data)


def test_a_same_size_replacement_is_indexed_when_read(tmp_path: Path) -> None:
    """Sizes agree, so opening trusts the row; the read finds the digest differs and
    the file's header vouches for it, instead of the share being dropped."""
    twin = share(1, 5, size=6001)  # HELD's pack is 6001 bytes too
    with FileShareStore(tmp_path, 10**6) as store:
        _put(store, HELD)
        path = store.path_of(*_key(HELD))
        path.write_bytes(framing.header(twin) + twin.data)
        assert path.stat().st_size == len(framing.header(HELD) + HELD.data)
    with FileShareStore(tmp_path, 10**6) as store:
        assert store.stats()["recovered_reindexed"] == 0
        assert store.get(*_key(HELD)) == twin
        assert store.stats()["corrupt_dropped"] == 0
        # Rot is still rot: bytes no descriptor vouches for are dropped.
        path.write_bytes(framing.header(twin) + bytes(len(twin.data)))
        assert store.get(*_key(HELD)) is None
        assert store.stats()["corrupt_dropped"] == 1
