"""Packs: sealed blobs gathered into a few MiB, the unit that gets erasure-coded.

Ten thousand small files then cost a few share sets, not ten thousand. A pack
is just the concatenation of its sealed blobs; where each blob lies is kept by
the owner (the entries go into the encrypted index), so storage peers cannot
even tell where one blob ends. A pack id is a 160-bit hash of the pack's
bytes: anyone holding a rebuilt pack can check it against its id. The hash
follows the share trees (decision 0043): BLAKE3 for packs described by version 2
descriptors, BLAKE2b for those of version 1.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import blake3

from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.codec.erasure import LATEST_TREE, TREE_BLAKE2B

DEFAULT_TARGET = 4 * 1024 * 1024
# The packs of big files' chunks: every share costs its holder a file, two syncs and
# an index row, and its owner a request, whatever its size, so a big file's packs are
# bigger. No bigger than this: a pack of 1-of-n (a setting, or a `repair --reencode`
# later) is one share, and a share may be at most 6 MiB on the wire.
BIG_FILE_TARGET = 6 * 1024 * 1024

Entry = tuple[bytes, int, int]  # chunk id, offset in the pack, length of the sealed blob


def pack_id_of(data: bytes | memoryview, version: int = LATEST_TREE) -> bytes:
    """The id a pack with these bytes must have, under descriptor version `version`."""
    if version == TREE_BLAKE2B:
        return hashlib.blake2b(data, digest_size=PACK_ID_BYTES).digest()
    return blake3.blake3(data).digest(length=PACK_ID_BYTES)


def pack_matches(pack_id: bytes, data: bytes | memoryview, version: int = LATEST_TREE) -> bool:
    """True when `data` is the pack named `pack_id` (e.g. after rebuilding from shares)."""
    return hmac.compare_digest(pack_id_of(data, version), pack_id)


@dataclass(frozen=True)
class Pack:
    pack_id: bytes
    data: bytes
    entries: list[Entry] = field(default_factory=list)

    def blob(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


class Packer:
    """Gathers sealed blobs until a pack reaches `target_size`.

    A pack never exceeds the target unless one blob alone does (then that blob
    gets a pack of its own), so pack sizes stay predictable for placement.
    """

    def __init__(self, target_size: int = DEFAULT_TARGET) -> None:
        if target_size < 1:
            raise ValueError("a pack target size must be positive")
        self.target_size = target_size
        self._parts: list[bytes] = []
        self._entries: list[Entry] = []
        self._size = 0

    @property
    def pending_bytes(self) -> int:
        return self._size

    def add(self, chunk_id: bytes, sealed: bytes) -> list[Pack]:
        """Append one sealed blob; returns the packs this finished (zero, one or two)."""
        if not sealed:
            raise ValueError("a sealed blob is never empty")
        done: list[Pack] = []
        if self._size and self._size + len(sealed) > self.target_size:
            done.append(self._finish())
        self._entries.append((chunk_id, self._size, len(sealed)))
        self._parts.append(sealed)
        self._size += len(sealed)
        if self._size >= self.target_size:
            done.append(self._finish())
        return done

    def flush(self) -> Pack | None:
        """The last, partly filled pack, or None if nothing is pending."""
        return self._finish() if self._parts else None

    def _finish(self) -> Pack:
        data = b"".join(self._parts)
        pack = Pack(pack_id_of(data), data, self._entries)
        self._parts, self._entries, self._size = [], [], 0
        return pack
