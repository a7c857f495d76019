"""A catalog or share index that is not a database (damaged) stops `serve` with one
line saying how the peer gets it back, not a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pbackup.backup.catalog import Catalog
from p2pbackup.errors import P2PBackupError
from p2pbackup.store.index import ShareIndex


def _garbage(path: Path) -> Path:
    path.write_bytes(os.urandom(4096))
    return path


def test_a_damaged_catalog_says_the_mesh_rebuilds_it(tmp_path: Path) -> None:
    path = _garbage(tmp_path / "catalog.sqlite3")
    with pytest.raises(P2PBackupError, match=r"move it aside .* rebuilds it from the mesh"):
        Catalog(path)


def test_a_damaged_share_index_says_the_share_files_rebuild_it(tmp_path: Path) -> None:
    path = _garbage(tmp_path / "index.sqlite3")
    with pytest.raises(P2PBackupError, match=r"^cannot read the share index .*share files\)$"):
        ShareIndex(path)
