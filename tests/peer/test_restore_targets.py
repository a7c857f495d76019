"""Two restores never write into one folder at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.restore_targets import RestoreTargets


def test_a_folder_a_restore_writes_into_is_refused_to_another_until_it_ends(
    tmp_path: Path,
) -> None:
    targets = RestoreTargets()
    out = tmp_path / "out"
    with targets.claim(out):
        for clash in (out, out / "inner", tmp_path, tmp_path / "x" / ".." / "out"):
            with pytest.raises(P2PBackupError, match="is running"), targets.claim(clash):
                pass
        with targets.claim(tmp_path / "out2"):  # a name that only starts alike
            pass
    with targets.claim(out / "inner"):  # ended: free again
        pass


def test_a_restore_that_failed_lets_its_folder_go(tmp_path: Path) -> None:
    targets = RestoreTargets()
    with pytest.raises(ValueError), targets.claim(tmp_path):
        raise ValueError("the restore failed")
    with targets.claim(tmp_path):
        pass
