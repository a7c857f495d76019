"""Opening a restore's chunks: one check of the pack against its id, one seal per chunk,
and no keyed hash over the file's bytes (decision 0053)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import blake3
import pytest

from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.restore_open import open_blob, pack_is_sound
from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.codec import chunks
from p2pbackup.codec.chunks import CorruptBlob, seal
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import backup, codec, restorer, write

KEY = bytes(range(32))


def packed(*plains: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """A pack of the sealed `plains`, and where each blob lies in it."""
    blobs = [seal(KEY, None, plain) for plain in plains]
    places, offset = [], 0
    for blob in blobs:
        places.append((offset, len(blob)))
        offset += len(blob)
    return b"".join(blobs), places


def test_open_blob_gives_back_raw_and_compressed_chunks() -> None:
    raw, squeezable = random.Random(1).randbytes(70_000), b"abc" * 30_000
    pack, places = packed(raw, squeezable, b"")
    assert [bytes(open_blob(KEY, pack, *place)) for place in places] == [raw, squeezable, b""]


@pytest.mark.parametrize("damage", ["flipped byte", "other key", "outside", "too short"])
def test_open_blob_refuses_what_the_owner_did_not_seal_there(damage: str) -> None:
    pack, [(offset, length)] = packed(random.Random(2).randbytes(10_000))
    key = KEY
    if damage == "flipped byte":
        pack = pack[:5000] + bytes([pack[5000] ^ 1]) + pack[5001:]
    elif damage == "other key":
        key = bytes(32)
    elif damage == "outside":
        length += 1
    else:
        length = chunks.SEAL_OVERHEAD - 1
    with pytest.raises(CorruptBlob):
        open_blob(key, pack, offset, length)


def test_a_pack_is_sound_under_either_id_hash_and_only_whole() -> None:
    pack = random.Random(3).randbytes(50_000)
    by_blake3 = blake3.blake3(pack).digest(length=PACK_ID_BYTES)
    by_blake2b = hashlib.blake2b(pack, digest_size=PACK_ID_BYTES).digest()
    assert pack_is_sound(by_blake3, pack) and pack_is_sound(by_blake2b, pack)
    damaged = pack[:-1] + bytes([pack[-1] ^ 1])
    assert not pack_is_sound(by_blake3, damaged) and not pack_is_sound(by_blake2b, damaged)


async def test_a_restore_hashes_no_file_data_with_the_chunk_id_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keyed hash of every chunk cost a restore more than decrypting it; the pack's
    id and each seal check the bytes now. Only folder lists (and a hole's first
    all-zero chunk per length) are still hashed with the key."""
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(4).randbytes(3 * 1024 * 1024)
    write(src / "big.bin", data)
    write(src / "hole.bin", bytes(256 * 1024) + data[:100_000])
    blobs, store = codec(1024 * 1024), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    hashed = 0
    real = chunks.chunk_id

    def counting(key: bytes, plain: bytes | memoryview) -> bytes:
        nonlocal hashed
        hashed += len(plain)
        return real(key, plain)

    monkeypatch.setattr(chunks, "chunk_id", counting)
    out = tmp_path / "out"
    stats = await restorer(codec(1024 * 1024), store).run(snapshot, out)
    assert stats.failures == []
    assert (out / "src" / "big.bin").read_bytes() == data
    assert (out / "src" / "hole.bin").read_bytes() == bytes(256 * 1024) + data[:100_000]
    assert 0 < hashed < 300 * 1024, hashed  # the folder list and one zero chunk at most
