"""The engines' codec adapter: ids, sealing, opening with and without an id, chunking."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pbackup.backup.blobs import BlobCodec, ChunkParams, CorruptBlob
from p2pbackup.crypto.keys import OwnerKeys

PARAMS = ChunkParams(min_size=1024, avg_size=4096, max_size=16 * 1024)


def _keys(seed: int) -> OwnerKeys:
    return OwnerKeys.from_master(bytes([seed]) * 32)


def test_seal_open_with_and_without_id() -> None:
    codec = BlobCodec(_keys(1), PARAMS)
    plain = b"tree or file bytes" * 100
    cid = codec.chunk_id(plain)
    sealed = codec.seal(cid, plain)
    assert codec.open(cid, sealed) == plain
    assert codec.open(None, sealed) == plain  # index blobs are read by locator only


def test_open_under_another_id_fails() -> None:
    codec = BlobCodec(_keys(1), PARAMS)
    sealed = codec.seal(codec.chunk_id(b"a"), b"a")
    with pytest.raises(CorruptBlob):
        codec.open(codec.chunk_id(b"b"), sealed)


def test_other_owner_cannot_open_or_match_ids() -> None:
    mine, theirs = BlobCodec(_keys(1), PARAMS), BlobCodec(_keys(2), PARAMS)
    assert mine.chunk_id(b"same file") != theirs.chunk_id(b"same file")
    sealed = mine.seal(mine.chunk_id(b"x"), b"x")
    with pytest.raises(CorruptBlob):
        theirs.open(None, sealed)


def test_chunker_and_packer_round_trip(tmp_path: Path) -> None:
    data = bytes(range(256)) * 400
    path = tmp_path / "file"
    path.write_bytes(data)
    codec = BlobCodec(_keys(3), PARAMS, pack_target=8 * 1024)
    reader = codec.open_chunker(bytes(path))
    packer = codec.packer()
    packs, ids = [], []
    try:
        while (chunk := reader.next_chunk()) is not None:
            cid = codec.chunk_id(chunk)
            ids.append(cid)
            packs += packer.add(cid, codec.seal(cid, chunk))
    finally:
        reader.close()
    tail = packer.flush()
    if tail is not None:
        packs.append(tail)
    where = {cid: (p, off, n) for p in packs for cid, off, n in p.entries}
    rebuilt = b"".join(
        codec.open(cid, where[cid][0].data[where[cid][1] : where[cid][1] + where[cid][2]])
        for cid in ids
    )
    assert rebuilt == data
