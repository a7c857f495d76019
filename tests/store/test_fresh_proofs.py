"""The audit after a put is answered from the leaves the put kept, and only when they
are the share's own: leaves that do not add up to the row's root never shape a proof."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pbackup.codec.erasure import BLOCK_SIZE, share_leaves, share_root, verify_block
from p2pbackup.store import FileShareStore, layout
from p2pbackup.store.contract import ShareKey
from p2pbackup.store.fresh_proofs import FreshLeaves
from tests.store.helpers import OWNER_A, pack

DATA = os.urandom(4 * BLOCK_SIZE - 100)
ROOT = share_root(DATA)


def put(store: FileShareStore, leaves: list[bytes]) -> None:
    store.put(pack(1), 0, DATA, b"descriptor", OWNER_A, 10**10, 1, root=ROOT, leaves=leaves)


@pytest.fixture
def whole_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    read = layout.read_share

    def counted(path: Path, skip: int = 0) -> bytes | None:
        seen.append(path)
        return read(path, skip)

    monkeypatch.setattr(layout, "read_share", counted)
    return seen


def test_the_first_proof_after_a_put_comes_from_its_leaves(
    tmp_path: Path, whole_reads: list[Path]
) -> None:
    with FileShareStore(tmp_path, 2**30) as store:
        put(store, share_leaves(DATA))
        for reads in (0, 1):  # the second reads the whole share again
            found = store.prove(pack(1), 0, OWNER_A, 1)
            assert found is not None and verify_block(ROOT, 1, found.block, found.proof, 4)
            assert len(whole_reads) == reads


def test_leaves_that_are_not_the_shares_own_never_shape_a_proof(
    tmp_path: Path, whole_reads: list[Path]
) -> None:
    """Block 1's own leaf is right, another is not: the path they give would not lead
    to the root, so the proof is built from the file instead."""
    leaves = share_leaves(DATA)
    leaves[3] = bytes(32)
    with FileShareStore(tmp_path, 2**30) as store:
        put(store, leaves)
        found = store.prove(pack(1), 0, OWNER_A, 1)
        assert found is not None and verify_block(ROOT, 1, found.block, found.proof, 4)
        assert len(whole_reads) == 1


def test_a_deleted_share_is_proven_by_no_kept_leaves(tmp_path: Path) -> None:
    with FileShareStore(tmp_path, 2**30) as store:
        put(store, share_leaves(DATA))
        assert store.delete(pack(1), 0, OWNER_A)
        assert store.prove(pack(1), 0, OWNER_A, 1) is None


def test_only_the_latest_shares_leaves_are_kept() -> None:
    fresh = FreshLeaves(limit=2)
    keys = [ShareKey(pack(i), 0, OWNER_A) for i in range(3)]
    for key in keys:
        fresh.keep(key, [key.pack_id])
    assert len(fresh) == 2 and fresh.take(keys[0]) is None
    assert fresh.take(keys[2]) == [keys[2].pack_id]
    assert fresh.take(keys[2]) is None  # one proof per put
