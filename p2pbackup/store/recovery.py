"""Making a file share store's index and files agree when it opens after a crash.

A share file is complete and fsynced before its index row commits, and a file is
unlinked before its row is dropped, so an unclean stop can leave a temp file, a file
without a row, or a row whose file is missing or of the wrong size. Temp files and
rows without a file are removed. A file without a row, or whose row disagrees with
it, is indexed again from its own header when that verifies (its owner's signed
descriptor names it and carries its Merkle root): the share may be one its owner was
told is stored, and deleting bytes that prove themselves would lose it. Only a file
that does not verify is deleted. What was done is counted for the log and `stats`.

A store written before shares were keyed by owner named its files by pack id and
index alone. The index is migrated first (one transaction, see `index`); then each
such file is renamed to the name its row's owner gives it. A rename is atomic and
the step runs on every open, so a kill halfway through leaves some files renamed
and the rest for the next open.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from p2pbackup.store import framing
from p2pbackup.store.contract import ShareKey
from p2pbackup.store.index import ShareIndex
from p2pbackup.store.layout import Scan, fsync_dir, path_of, read_share, scan

log = logging.getLogger("p2pbackup.store.shares")  # the name log lines have always carried


def reconcile(root: Path, shares_dir: Path, index: ShareIndex) -> dict[str, int]:
    """Make index and files agree after a crash; returns what was done for the log."""
    found = scan(shares_dir)
    _rename_legacy(shares_dir, index, found)
    files = found.files
    rows_dropped = reindexed = orphans_deleted = 0
    with index.transaction():
        for key, size in index.file_sizes().items():
            on_disk = files.get(key)
            if on_disk is not None and on_disk[1] == size:
                del files[key]
                continue
            if on_disk is None:
                index.delete(key)
                rows_dropped += 1
            # A file whose size disagrees with its row (a crash while replacing it)
            # is judged by its own header below, with the files that have no row.
        for key, (path, _size) in sorted(files.items()):
            if _reindex(index, key, path):
                reindexed += 1
                continue
            if index.delete(key) is not None:
                rows_dropped += 1
            else:
                orphans_deleted += 1
            path.unlink(missing_ok=True)
    recovered = {
        "temps_removed": found.temps_removed,
        "rows_dropped": rows_dropped,
        "orphans_deleted": orphans_deleted,
        "reindexed": reindexed,
    }
    if any(recovered.values()):
        log.warning(
            "share store %s recovered from an unclean stop: %d temp files removed, "
            "%d index rows without a good file dropped, %d files without a row deleted, "
            "%d files that verify indexed again",
            root,
            found.temps_removed,
            rows_dropped,
            orphans_deleted,
            reindexed,
        )
    return recovered


def _reindex(index: ShareIndex, key: ShareKey, path: Path) -> bool:
    """Index the share `path` holds if it verifies; False when it does not."""
    blob = read_share(path)
    found = None if blob is None else framing.verified(key, blob)
    if found is None:
        return False
    index.insert(found.share, found.root, found.header_bytes)
    return True


def _rename_legacy(shares_dir: Path, index: ShareIndex, found: Scan) -> None:
    """Give each file named before shares were keyed by owner its owner's name.

    A file with no row is left under its old name, which `reconcile` then deletes
    as an orphan, as it would have before: it has no header to verify."""
    synced: set[Path] = set()
    for (pack_id, idx), (path, size) in sorted(found.legacy.items()):
        owners = index.owners_of(pack_id, idx)
        key = ShareKey(pack_id, idx, owners[0]) if len(owners) == 1 else None
        if key is None or key in found.files:
            found.files[ShareKey(pack_id, idx, b"")] = (path, size)  # an orphan
            continue
        target = path_of(shares_dir, key)
        os.rename(path, target)
        found.files[key] = (target, size)
        synced.add(target.parent)
    for directory in sorted(synced):
        fsync_dir(directory)
    if found.legacy:
        log.info("share store: %d share files renamed to carry their owner", len(synced))
