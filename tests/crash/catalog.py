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


def workload(sync: str = "FULL") -> Workload:
    script = f"from tests.crash.catalog import run; run({sync!r})"
    return Workload("catalog commit", prepare, script, check)
