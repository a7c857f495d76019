"""What the engine process reports when its job ends in an error: one line, no repr,
and a bug's traceback carried to the peer's log."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from p2pbackup.errors import P2PBackupError
from p2pbackup.peer import engine_frames as frames
from p2pbackup.peer.engine_child import _failure

BACKUP = frames.Start(
    b"\x00" * 32, frames.BackupJob(Path("/home/x/p2p/catalog.db"), ("/d",), "host")
)


def test_a_users_path_error_is_its_path_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    denied = PermissionError(errno.EACCES, "Permission denied", "/home/x/restored")
    wrapped = ExceptionGroup("nursery", [denied])
    assert _failure(wrapped, BACKUP) == ("/home/x/restored: permission denied", None)
    assert _failure(P2PBackupError("pack gone"), BACKUP) == ("pack gone", None)
    assert capsys.readouterr().err == ""  # not a bug: no traceback in the log


def test_a_full_disk_says_which_and_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    """SQLite's "database or disk is full", alone or beside another upload's error in a
    group, was reported as a bug ("OperationalError", "ExceptionGroup")."""
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    both = ExceptionGroup("uploads", [full, OSError(errno.ENOSPC, "No space left on device")])
    for caught in (full, both, OSError(errno.EDQUOT, "Disk quota exceeded")):
        line, trace = _failure(caught, BACKUP)
        assert line.startswith("the disk holding /home/x/p2p is full: free some space")
        assert trace is None
    assert capsys.readouterr().err == ""


def test_a_bug_is_named_and_its_traceback_carried(capsys: pytest.CaptureFixture[str]) -> None:
    sizes: dict[str, int] = {}
    try:
        sizes["size"]
    except KeyError as exc:
        line, trace = _failure(exc, BACKUP)
    assert line == "the backup process failed (KeyError: 'size'); see the peer's log"
    assert trace is not None and "Traceback" in trace and "KeyError" in trace
    outcome = frames.Outcome(error=line, trace=trace)
    decoded = frames.decode_from_engine(outcome.encode())
    assert isinstance(decoded, frames.Outcome) and decoded.trace == trace
