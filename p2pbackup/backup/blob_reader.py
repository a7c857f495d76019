"""Reading an owner's sealed blobs back out of its packs: trees, file chunks, index blobs.

Restore, prune and repack all read blobs by chunk id through the index, and
trees and index blobs sit close together in a few packs, so a small cache of
recent packs saves fetching the same pack (k shares from the mesh) again for
each blob in it.
"""

from __future__ import annotations

from collections import OrderedDict

import cbor2

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.snapshot import Locator
from p2pbackup.codec.packstore import PackStore
from p2pbackup.errors import P2PBackupError, WireError

PACK_CACHE = 8


class BlobReader:
    """Reads sealed blobs out of packs, keeping the last few packs in memory."""

    def __init__(self, codec: BlobCodec, packs: PackStore, index: dict[bytes, Locator]) -> None:
        self.codec = codec
        self.packs = packs
        self.index = index
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()

    async def pack(self, pack_id: bytes) -> bytes:
        cached = self._cache.get(pack_id)
        if cached is not None:
            self._cache.move_to_end(pack_id)
            return cached
        data = await self.packs.get(pack_id)
        self._cache[pack_id] = data
        while len(self._cache) > PACK_CACHE:
            self._cache.popitem(last=False)
        return data

    def clear(self) -> None:
        """Drop the cached packs (restore is done with trees once data starts)."""
        self._cache.clear()

    async def blob(self, chunk_id: bytes) -> bytes:
        locator = self.index.get(chunk_id)
        if locator is None:
            raise P2PBackupError(f"chunk {chunk_id.hex()[:12]} is in no index of this owner")
        return await self.at(locator, chunk_id)

    async def at(self, locator: Locator, chunk_id: bytes | None) -> bytes:
        pack = await self.pack(locator.pack_id)
        sealed = pack[locator.offset : locator.offset + locator.length]
        return self.codec.open(chunk_id, sealed)


async def load_index(
    reader: BlobReader,
    locators: tuple[Locator, ...],
    problems: list[str] | None = None,
    released: frozenset[bytes] = frozenset(),
) -> dict[bytes, Locator]:
    """Read the owner's index blobs into one map from chunk id to locator.

    A location inside a `released` pack is skipped: a repack or a second device may
    have left another copy of that chunk, and the released one is going away.
    Raises `P2PBackupError` on the first blob that cannot be read, unless `problems`
    is given: then each such blob's reason goes there and the rest are still read."""
    index: dict[bytes, Locator] = {}
    for locator in locators:
        try:
            try:
                raw = cbor2.loads(await reader.at(locator, None))
            except P2PBackupError:
                raise
            except Exception as exc:
                raise WireError(f"undecodable index blob: {type(exc).__name__}") from None
            if not isinstance(raw, dict):
                raise WireError("an index blob must be a map")
            for chunk_id, value in raw.items():
                if isinstance(chunk_id, bytes) and len(chunk_id) == 32:
                    found = Locator.from_wire(value)
                    if found.pack_id not in released:
                        index[chunk_id] = found
        except P2PBackupError as exc:
            if problems is None:
                raise
            problems.append(f"index blob in pack {locator.pack_id.hex()[:12]}: {exc}")
    return index
