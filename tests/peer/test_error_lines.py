"""What the engine process reports when its job ends in an error: one line, no repr."""

from __future__ import annotations

import errno

import pytest

from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.engine_child import _failure_line


def test_a_users_path_error_is_its_path_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    denied = PermissionError(errno.EACCES, "Permission denied", "/home/x/restored")
    wrapped = ExceptionGroup("nursery", [denied])
    assert _failure_line(wrapped, "restore") == "/home/x/restored: permission denied"
    assert _failure_line(P2PBackupError("pack gone"), "restore") == "pack gone"
    assert capsys.readouterr().err == ""  # not a bug: no traceback in the log


def test_a_bug_is_named_and_its_traceback_logged(capsys: pytest.CaptureFixture[str]) -> None:
    sizes: dict[str, int] = {}
    try:
        sizes["size"]
    except KeyError as exc:
        line = _failure_line(exc, "backup")
    assert line == "the backup process failed (KeyError: 'size'); see the peer's log"
    assert "Traceback" in capsys.readouterr().err
