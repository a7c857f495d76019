"""Making a file share store's index and files agree when it opens after a crash.

A share file is complete and fsynced before its index row commits, and a row is
dropped before its file is unlinked, so an unclean stop can leave only a temp file,
a file without a row, or a row whose file is missing or of the wrong size. None of
those was acknowledged as stored, so each is removed, and what was cleaned is
counted for the log and for `stats`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from p2pbackup.store.index import ShareIndex
from p2pbackup.store.layout import scan

log = logging.getLogger("p2pbackup.store.shares")  # the name log lines have always carried


def reconcile(root: Path, shares_dir: Path, index: ShareIndex) -> dict[str, int]:
    """Make index and files agree after a crash; returns what was cleaned for the log."""
    files, temps_removed = scan(shares_dir)
    rows_dropped = 0
    with index.transaction():
        for pack_id, idx, size, _lease in index.listing():
            key = (pack_id, idx)
            found = files.pop(key, None)
            if found is not None and found[1] == size:
                continue
            # A missing file, or one whose size disagrees with the row (a crash
            # while replacing it): the row cannot be trusted, so neither can the file.
            index.delete(key)
            rows_dropped += 1
            if found is not None:
                found[0].unlink(missing_ok=True)

    for path, _size in files.values():
        path.unlink(missing_ok=True)
    recovered = {
        "temps_removed": temps_removed,
        "rows_dropped": rows_dropped,
        "orphans_deleted": len(files),
    }
    if any(recovered.values()):
        log.warning(
            "share store %s recovered from an unclean stop: %d temp files removed, "
            "%d index rows without a good file dropped, %d files without a row deleted",
            root,
            temps_removed,
            rows_dropped,
            len(files),
        )
    return recovered
