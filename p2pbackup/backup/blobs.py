"""The codec as the backup and restore engines use it: one owner's keys, bound once.

Blobs are sealed without binding the chunk id as associated data, on purpose:
the engine seals index blobs under a chunk id like any other blob, but restore
reads them back by locator alone (`open(None, ...)`), before it knows any id.
Binding is done instead by the check on open: with a chunk id, the opened
bytes must hash to it under the owner's chunk-id key. That is stronger than
associated data (it proves the content, not only which id the sealer named),
and without an id the AEAD still proves the blob is this owner's and intact.

The all-zero chunks of a sparse file's holes are hashed once per length: their
ids are remembered, in both directions, so a backup does not hash a hole and a
restore knows a hole's chunk by its id without opening it (an id names its
content as surely as the bytes do).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from p2pbackup.codec import chunks
from p2pbackup.codec.chunker import (
    DEFAULT_PARAMS,
    ChunkParams,
    ChunkReader,
    is_zeros,
    open_chunker,
)
from p2pbackup.codec.chunks import ZSTD_LEVEL, CorruptBlob
from p2pbackup.codec.packs import BIG_FILE_TARGET, DEFAULT_TARGET, Pack, Packer
from p2pbackup.crypto.keys import OwnerKeys

_ZERO_IDS_KEPT = 64

__all__ = ["BlobCodec", "ChunkParams", "ChunkReader", "CorruptBlob", "Pack", "Packer"]


class BlobCodec:
    """Chunk ids, sealing, chunking and packing under one owner's keys and settings."""

    def __init__(
        self,
        keys: OwnerKeys,
        chunk_params: ChunkParams = DEFAULT_PARAMS,
        *,
        pack_target: int = DEFAULT_TARGET,
        big_pack_target: int | None = None,
        zstd_level: int = ZSTD_LEVEL,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.keys = keys
        self.random_bytes = random_bytes  # nonces; seeded only in the simulator
        self.chunk_params = chunk_params
        self.pack_target = pack_target
        # A codec given a pack target of its own packs big files to it too, unless told.
        if big_pack_target is None:
            big_pack_target = BIG_FILE_TARGET if pack_target == DEFAULT_TARGET else pack_target
        if big_pack_target < 1:
            raise ValueError("a pack target size must be positive")
        self.big_pack_target = big_pack_target
        self.zstd_level = zstd_level
        # All-zero chunks met so far: length -> id, and id -> length. Each dict step
        # is atomic, so worker threads may share them; a race only hashes twice.
        self._zero_ids: dict[int, bytes] = {}
        self._zero_lengths: dict[bytes, int] = {}

    def chunk_id(self, plain: bytes) -> bytes:
        """The owner-keyed 32-byte id that dedups this chunk."""
        if not is_zeros(plain):
            return chunks.chunk_id(self.keys.chunk_id_key, plain)
        found = self._zero_ids.get(len(plain))
        if found is None:
            found = chunks.chunk_id(self.keys.chunk_id_key, plain)
            self._note_zeros(found, len(plain))
        return found

    def _note_zeros(self, chunk_id: bytes, length: int) -> None:
        if len(self._zero_lengths) >= _ZERO_IDS_KEPT:
            return  # zero runs of that many lengths are not holes worth a cache
        self._zero_ids[length] = chunk_id
        self._zero_lengths[chunk_id] = length

    def zero_length(self, chunk_id: bytes) -> int | None:
        """The length of the all-zero chunk with this id, if one was met (hashed or
        opened) so far; None says nothing about the chunk."""
        return self._zero_lengths.get(chunk_id)

    def seal(self, chunk_id: bytes, plain: bytes) -> bytes:
        """Compress and encrypt one blob. `chunk_id` is checked on open, not bound as AAD
        (see the module docstring)."""
        del chunk_id  # part of the engine's call; the id is verified from content on open
        return chunks.seal(
            self.keys.data_key, None, plain, level=self.zstd_level, random_bytes=self.random_bytes
        )

    def open(self, chunk_id: bytes | None, sealed: bytes) -> bytes:
        """Decrypt one blob; with a chunk id, also prove the content is that chunk.

        None skips the id check (index blobs). Raises `CorruptBlob` on any failure.
        """
        plain = chunks.open_sealed(self.keys.data_key, None, sealed)
        if chunk_id is not None:
            chunks.check_chunk_id(self.keys.chunk_id_key, chunk_id, plain)
            if is_zeros(plain):
                self._note_zeros(chunk_id, len(plain))
        return plain

    def open_chunker(self, path: str | bytes) -> ChunkReader:
        """A reader yielding the file's content-defined chunks; raises `OSError`."""
        return open_chunker(path, self.chunk_params)

    def packer(self) -> Packer:
        return Packer(self.pack_target)

    def big_packer(self) -> Packer:
        """A packer for big files' chunks (see `BIG_FILE_TARGET`)."""
        packer = self.packer()
        packer.target_size = self.big_pack_target
        return packer
