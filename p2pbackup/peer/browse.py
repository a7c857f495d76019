"""Browsing a snapshot without restoring it: the entries `ls` shows, read tree by tree.

Only the trees on the way to the asked-for prefix are fetched, so listing one
folder of a large snapshot reads a few folder blobs, not the whole snapshot.
"""

from __future__ import annotations

import os

from p2pbackup.backup.blob_reader import BlobReader
from p2pbackup.backup.tree import EntryKind, Tree
from p2pbackup.peer.results import ListedEntry


def inside_snapshot(path: str, roots: tuple[str, ...]) -> str:
    """`path` as the snapshot names it: a path under one of its backed-up paths as the
    machine had it (/home/me/docs/taxes, the way `snapshots` shows them) becomes
    docs/taxes; anything else is taken as named inside the snapshot already."""
    for root in roots:
        base = root.rstrip("/")
        if path == root or path.startswith(base + "/"):
            name = os.path.basename(base) or "root"
            return (name + path[len(base) :]).strip("/")
    return path.strip("/")


async def list_entries(
    reader: BlobReader,
    tree_id: bytes,
    relative: bytes,
    prefix: bytes,
    out: list[ListedEntry],
) -> None:
    """The entries under `prefix` in the tree `tree_id`, depth first."""
    tree = Tree.decode(await reader.blob(tree_id))
    for entry in tree.entries:
        path = os.path.join(relative, entry.name)
        inside = not prefix or path == prefix or path.startswith(prefix + b"/")
        leads_there = prefix.startswith(path + b"/")
        if inside:
            out.append(
                ListedEntry(
                    os.fsdecode(path),
                    entry.kind.name.lower(),
                    entry.size,
                    entry.mode,
                    entry.mtime_ns / 1e9,
                    os.fsdecode(entry.target) if entry.target else None,
                )
            )
        if entry.kind is EntryKind.DIR and entry.subtree and (inside or leads_there):
            await list_entries(reader, entry.subtree, path, prefix, out)
