"""Packer: target sizes, entries that slice back to the sealed blobs, verifiable ids."""

from __future__ import annotations

import hashlib

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.codec.erasure import TREE_BLAKE2B
from p2pbackup.codec.packs import PACK_ID_BYTES, Pack, Packer, pack_id_of, pack_matches


def _pack_all(packer: Packer, blobs: list[tuple[bytes, bytes]]) -> list[Pack]:
    packs: list[Pack] = []
    for cid, sealed in blobs:
        packs += packer.add(cid, sealed)
    tail = packer.flush()
    if tail is not None:
        packs.append(tail)
    return packs


blob_lists = st.lists(st.binary(min_size=1, max_size=700), max_size=40).map(
    lambda sealed: [(i.to_bytes(32, "big"), s) for i, s in enumerate(sealed)]
)


@settings(max_examples=80, deadline=None)
@given(blob_lists, st.integers(1, 2000))
def test_entries_slice_back_to_blobs(blobs: list[tuple[bytes, bytes]], target: int) -> None:
    packs = _pack_all(Packer(target), blobs)
    found = [(cid, p.blob(off, n)) for p in packs for cid, off, n in p.entries]
    assert found == blobs  # every blob once, in order, byte for byte
    for p in packs:
        assert p.entries
        assert len(p.pack_id) == PACK_ID_BYTES
        assert pack_matches(p.pack_id, p.data)
        assert sum(n for _, _, n in p.entries) == len(p.data)
        # Over the target only when one blob alone is.
        assert len(p.data) <= target or len(p.entries) == 1


@settings(max_examples=40, deadline=None)
@given(blob_lists)
def test_full_packs_reach_the_target(blobs: list[tuple[bytes, bytes]]) -> None:
    target = 1000
    packer = Packer(target)
    for cid, sealed in blobs:
        for pack in packer.add(cid, sealed):
            # A finished pack was either full, or closed because the next blob did not fit.
            assert len(pack.data) >= target or len(pack.data) + len(sealed) > target


def test_flush_when_empty_is_none() -> None:
    packer = Packer(100)
    assert packer.flush() is None
    packer.add(b"\x01" * 32, b"abc")
    assert packer.pending_bytes == 3
    pack = packer.flush()
    assert pack is not None and pack.entries == [(b"\x01" * 32, 0, 3)]
    assert packer.flush() is None


def test_oversized_blob_gets_its_own_pack() -> None:
    packer = Packer(100)
    assert packer.add(b"a" * 32, b"x" * 40) == []
    done = packer.add(b"b" * 32, b"y" * 500)
    assert [len(p.data) for p in done] == [40, 500]
    assert packer.flush() is None


def test_pack_id_detects_changes() -> None:
    data = b"some pack bytes"
    pid = pack_id_of(data)
    assert pack_matches(pid, data)
    assert not pack_matches(pid, data + b"!")


def test_empty_blob_refused() -> None:
    with pytest.raises(ValueError):
        Packer(10).add(b"c" * 32, b"")


def test_a_pack_id_is_checked_under_the_hash_its_descriptor_names() -> None:
    """New packs are named by BLAKE3; packs described by version 1 descriptors keep
    their BLAKE2b names and still check after a rebuild."""
    data = b"sealed blobs of one pack" * 100
    new, old = pack_id_of(data), pack_id_of(data, TREE_BLAKE2B)
    assert new == blake3.blake3(data).digest(length=20)
    assert old == hashlib.blake2b(data, digest_size=20).digest()
    assert pack_matches(new, data) and not pack_matches(old, data)
    assert pack_matches(old, data, TREE_BLAKE2B) and not pack_matches(new, data, TREE_BLAKE2B)
