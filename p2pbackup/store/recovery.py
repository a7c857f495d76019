"""Making a file share store's index and files agree when it opens after a crash.

A share file is complete and fsynced before its index row commits, and a row is
dropped before its file is unlinked, so an unclean stop can leave only a temp file,
a file without a row, or a row whose file is missing or of the wrong size. None of
those was acknowledged as stored, so each is removed, and what was cleaned is
counted for the log and for `stats`.

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

from p2pbackup.store.contract import ShareKey
from p2pbackup.store.index import ShareIndex
from p2pbackup.store.layout import Scan, fsync_dir, path_of, scan

log = logging.getLogger("p2pbackup.store.shares")  # the name log lines have always carried


def reconcile(root: Path, shares_dir: Path, index: ShareIndex) -> dict[str, int]:
    """Make index and files agree after a crash; returns what was cleaned for the log."""
    found = scan(shares_dir)
    _rename_legacy(shares_dir, index, found)
    files = found.files
    rows_dropped = 0
    with index.transaction():
        for info in index.listing():
            key = ShareKey(info.pack_id, info.idx, info.owner)
            on_disk = files.pop(key, None)
            if on_disk is not None and on_disk[1] == info.size:
                continue
            # A missing file, or one whose size disagrees with the row (a crash
            # while replacing it): the row cannot be trusted, so neither can the file.
            index.delete(key)
            rows_dropped += 1
            if on_disk is not None:
                on_disk[0].unlink(missing_ok=True)

    for path, _size in files.values():
        path.unlink(missing_ok=True)
    recovered = {
        "temps_removed": found.temps_removed,
        "rows_dropped": rows_dropped,
        "orphans_deleted": len(files),
    }
    if any(recovered.values()):
        log.warning(
            "share store %s recovered from an unclean stop: %d temp files removed, "
            "%d index rows without a good file dropped, %d files without a row deleted",
            root,
            found.temps_removed,
            rows_dropped,
            len(files),
        )
    return recovered


def _rename_legacy(shares_dir: Path, index: ShareIndex, found: Scan) -> None:
    """Give each file named before shares were keyed by owner its owner's name.

    A file with no row is left under its old name, which `reconcile` then deletes
    as an orphan, as it would have before."""
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
