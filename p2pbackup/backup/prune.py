"""What prune keeps, repacks and releases, from the chunks the kept snapshots use.

Every tree of every kept snapshot is read and every chunk a file or folder
names is marked; a pack holding no marked chunk is no longer needed, and one
whose marked chunks fill little of it is repacked (as restic does). A tree
that cannot be read stops the prune: releasing packs without knowing what
they hold could drop data a kept snapshot needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from p2pbackup.backup.blob_reader import BlobReader
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.backup.tree import EntryKind, Tree
from p2pbackup.errors import P2PBackupError


async def used_chunks(reader: BlobReader, snapshots: Iterable[Snapshot]) -> set[bytes]:
    """Ids of every tree and file chunk the snapshots reach; each tree is read once."""
    used: set[bytes] = set()
    todo = [s.tree for s in snapshots]
    while todo:
        tree_id = todo.pop()
        if tree_id in used:
            continue
        used.add(tree_id)
        try:
            tree = Tree.decode(await reader.blob(tree_id))
        except P2PBackupError as exc:
            raise P2PBackupError(
                f"a folder list ({tree_id.hex()[:12]}) cannot be read, so nothing is pruned: {exc}"
            ) from None
        for entry in tree.entries:
            if entry.kind is EntryKind.DIR and entry.subtree is not None:
                todo.append(entry.subtree)
            elif entry.kind is EntryKind.FILE:
                used.update(chunk_id for chunk_id, _ in entry.chunks)
    return used


def pack_extents(*indexes: dict[bytes, Locator]) -> dict[bytes, int]:
    """How far into each pack the indexed blobs reach: its size, as far as the index knows."""
    extents: dict[bytes, int] = {}
    for index in indexes:
        for loc in index.values():
            end = loc.offset + loc.length
            if end > extents.get(loc.pack_id, 0):
                extents[loc.pack_id] = end
    return extents


@dataclass(frozen=True)
class PrunePlan:
    release: list[bytes]  # packs no kept snapshot needs
    repack: dict[bytes, list[tuple[bytes, Locator]]]  # mostly unused pack -> its used blobs
    kept: int  # packs kept as they are

    @property
    def repack_bytes(self) -> int:
        return sum(loc.length for blobs in self.repack.values() for _, loc in blobs)


def plan_prune(
    index: dict[bytes, Locator],
    used: set[bytes],
    index_packs: set[bytes],
    known: set[bytes],
    sizes: dict[bytes, int],
    repack_below: float,
) -> PrunePlan:
    """Which packs go, which are repacked, from what the kept snapshots use.

    `index` maps chunk id to the one location prune keeps for it; `index_packs`
    hold index blobs still read and are kept whole. A data pack whose used
    blobs fill less than `repack_below` of its size is repacked: its used blobs
    move to new packs and it is released with the unused ones. Packs in
    `known` that hold nothing used are released."""
    needed: dict[bytes, list[tuple[bytes, Locator]]] = {}
    for chunk_id in used:
        loc = index.get(chunk_id)
        if loc is not None:
            needed.setdefault(loc.pack_id, []).append((chunk_id, loc))
    repack: dict[bytes, list[tuple[bytes, Locator]]] = {}
    for pack_id, blobs in needed.items():
        if pack_id in index_packs:
            continue
        size = sizes.get(pack_id, 0)
        if sum(loc.length for _, loc in blobs) < repack_below * size:
            repack[pack_id] = sorted(blobs, key=lambda item: item[1].offset)
    keep = (set(needed) | index_packs) - set(repack)
    release = sorted((known | set(repack)) - keep)
    return PrunePlan(release, repack, len(keep & known))
