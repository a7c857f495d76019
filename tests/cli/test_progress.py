"""The one-line progress text of pack-by-pack commands (check, repair, prune), and
what drawing it costs a command that draws nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from p2pbackup.cli.progress import live_progress, pack_detail


@pytest.mark.parametrize(
    ("frame", "line"),
    [
        ({"packs_checked": 3, "packs": 40}, "checked 3 of 40 packs"),
        ({"packs_repacked": 1, "packs_to_repack": 2}, "repacked 1 of 2 packs"),
        ({"packs_released": 5, "shares_dropped": 48}, "releasing 5 packs, 48 shares dropped"),
        ({"something_else": 1}, "working"),
    ],
)
def test_each_kind_of_frame_reads_as_one_line(frame: dict[str, int], line: str) -> None:
    assert pack_detail(frame) == line


def test_off_a_terminal_progress_is_a_callback_that_draws_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with live_progress("restore", "restore") as update:
        update({"files_restored": 1, "bytes": 10})
    assert capsys.readouterr().err == ""


def test_the_command_line_loads_no_cipher_codec_database_or_drawing_library() -> None:
    """A command that only asks the running peer (backup, restore, --json) pays for
    every module the command line loads, at each start."""
    heavy = ("nacl", "zfec", "sqlite3", "rich", "trio", "blake3", "p2pbackup.store")
    code = f"import sys, p2pbackup.cli.app; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
