"""The owner's catalog workload: a backup commits its packs one by one, and each
commit returning is what tells the backup the pack need not be sent again."""

from __future__ import annotations

import sys
from pathlib import Path

from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.snapshot import Locator
from tests.crash.harness import Workload, ack
from tests.store.helpers import pack

NAME = "catalog.sqlite3"
PACKS = 3
CHUNKS = 40


def chunks(n: int) -> list[tuple[bytes, Locator]]:
    return [(b"chunk-%d-%d" % (n, j), Locator(pack(n), j * 512, 512)) for j in range(CHUNKS)]


def prepare(root: Path) -> None:
    catalog = Catalog(root / NAME)
    catalog.record_pack(pack(99), 2, 3, 100, 1, chunks(99))  # an earlier backup's pack
    catalog.close()


def run(sync: str) -> None:
    path = Path(sys.argv[1]) / NAME
    catalog = Catalog(path) if sync == "FULL" else Catalog(path, _sync=sync)
    for n in range(PACKS):
        catalog.record_pack(pack(n), 2, 3, CHUNKS * 512, 1, chunks(n))
        ack(f"pack{n}")
    catalog.close()


def run_synced_once() -> None:
    """A backup's commits: each returns unsynced; the end of the run syncs them all."""
    catalog = Catalog(Path(sys.argv[1]) / NAME)
    with catalog.synced_once():
        for n in range(PACKS):
            catalog.record_pack(pack(n), 2, 3, CHUNKS * 512, 1, chunks(n))
    ack("synced")
    catalog.close()


def check(root: Path, acked: tuple[str, ...]) -> None:
    """Acknowledged packs are known with every chunk; others wholly or not at all."""
    catalog = Catalog(root / NAME)
    try:
        for n in [99, *range(PACKS)]:
            found = [catalog.locate(chunk) == where for chunk, where in chunks(n)]
            if n == 99 or f"pack{n}" in acked:
                assert all(found), f"acknowledged pack {n} lost {found.count(False)} chunks"
            else:
                assert all(found) or not any(found), f"pack {n} half committed"
            assert (pack(n) in catalog.pack_ids()) == all(found), f"pack {n} row disagrees"
    finally:
        catalog.close()


def check_synced_once(root: Path, acked: tuple[str, ...]) -> None:
    """Once synced, every pack is known; before, the packs known are the first ones
    committed, each whole (a cut never leaves a later commit without an earlier one)."""
    catalog = Catalog(root / NAME)
    try:
        held = [pack(n) in catalog.pack_ids() for n in [99, *range(PACKS)]]
        for n in [99, *range(PACKS)]:
            found = [catalog.locate(chunk) == where for chunk, where in chunks(n)]
            assert all(found) or not any(found), f"pack {n} half committed"
            assert (pack(n) in catalog.pack_ids()) == all(found), f"pack {n} row disagrees"
    finally:
        catalog.close()
    assert held[0], "an earlier backup's pack was lost"
    assert held == sorted(held, reverse=True), f"a later commit without an earlier: {held}"
    assert "synced" not in acked or all(held), f"synced, yet packs lost: {held}"


def synced_once_workload() -> Workload:
    script = "from tests.crash.catalog import run_synced_once; run_synced_once()"
    return Workload("catalog commits synced once", prepare, script, check_synced_once)


def workload(sync: str = "FULL") -> Workload:
    script = f"from tests.crash.catalog import run; run({sync!r})"
    return Workload("catalog commit", prepare, script, check)
