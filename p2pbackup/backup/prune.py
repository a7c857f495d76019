"""Which chunks the kept snapshots still need: the mark half of prune.

Every tree of every kept snapshot is read and every chunk a file or folder
names is marked; a pack holding no marked chunk is no longer needed. A tree
that cannot be read stops the prune: releasing packs without knowing what
they hold could drop data a kept snapshot needs.
"""

from __future__ import annotations

from collections.abc import Iterable

from p2pbackup.backup.restore import BlobReader
from p2pbackup.backup.snapshot import Snapshot
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


def unused_packs(
    index: dict[bytes, bytes], used: set[bytes], index_packs: set[bytes], known: set[bytes]
) -> set[bytes]:
    """Packs to release: known ones that hold no used chunk and no index blob still read.

    `index` maps chunk id to pack id. With no snapshot left, `index_packs` is
    empty and the index packs go too."""
    needed = {index[c] for c in used if c in index} | index_packs
    return known - needed
