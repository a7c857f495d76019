"""The audit that follows a put, answered from the leaf hashes the put computed.

A put that names a block is proven in its own reply, from its bytes (decisions
0057, 0070), and keeps nothing here. A put that names none (a share placed on its
holder's word) may still be audited right after: the holder has just hashed every
block of that share to check it against the signed root, so the proof's path is
already known, and only the audited block is read back from disk and hashed, not
the whole share (decision 0052). A kept entry answers one audit only, the next
after its put; every later audit (a keeper's, days on) reads and hashes the whole
share as before, so rot anywhere in the file is still found.

The answer is as sound as one built from the file: the leaves must hash up to the
root the share's row names, and the block read from the file must hash to its
leaf, else the entry is dropped and the audit takes the full path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from p2pbackup.codec.erasure import BLOCK_SIZE, block_leaf, leaves_proof, leaves_root
from p2pbackup.store import layout
from p2pbackup.store.contract import BlockProof, ShareKey
from p2pbackup.store.index import Row

# Entries kept: an owner has a few packs in flight, and each holder takes one share
# of each, so a handful would do; several owners at once fit too. A share's leaves
# are 32 bytes per 64 KiB block, about 1.4 KB for a 2.8 MB share.
MAX_FRESH = 128


class FreshLeaves:
    """The leaf hashes of recently put shares, each for its next proof only."""

    def __init__(self, limit: int = MAX_FRESH) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._kept: OrderedDict[ShareKey, list[bytes]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def keep(self, key: ShareKey, leaves: list[bytes]) -> None:
        """Keep `leaves` for the next proof of `key`, forgetting the oldest beyond the
        limit."""
        with self._lock:
            self._kept[key] = list(leaves)
            self._kept.move_to_end(key)
            while len(self._kept) > self._limit:
                self._kept.popitem(last=False)

    def take(self, key: ShareKey) -> list[bytes] | None:
        """The leaves kept for `key`, forgotten as they are handed out."""
        with self._lock:
            return self._kept.pop(key, None)

    def drop(self, key: ShareKey) -> None:
        with self._lock:
            self._kept.pop(key, None)


def proven_from_leaves(path: Path, row: Row, block: int, leaves: list[bytes]) -> BlockProof | None:
    """Block `block` of the share in `path` with its path from `leaves`; None unless the
    leaves lead up to the root `row` names and the block on disk hashes to its leaf."""
    tree = row.merkle
    if not tree or not 0 <= block < len(leaves) or leaves_root(leaves, tree) != row.digest:
        return None
    start = block * BLOCK_SIZE
    length = max(0, min(BLOCK_SIZE, row.size - start))
    data = layout.read_range(path, row.header + start, length)
    if data is None or len(data) != length or block_leaf(data, tree) != leaves[block]:
        return None
    return BlockProof(data, leaves_proof(leaves, block, tree))
