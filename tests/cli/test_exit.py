"""The command line's exit: skipping the interpreter's teardown must keep the exit status,
the output and the exit handlers a normal exit has."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from p2pbackup.cli.localmesh import CLI


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)


def test_a_failed_command_keeps_its_status_and_its_error_line(tmp_path: Path) -> None:
    done = _run(*CLI, "--home", str(tmp_path / "nobody-home"), "snapshots")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no peer is running for this home")


def test_an_empty_tag_is_refused_before_the_peer_is_asked(tmp_path: Path) -> None:
    done = _run(*CLI, "--home", str(tmp_path), "backup", str(tmp_path), "--tag", " ", "--json")
    assert done.returncode == 2
    assert done.stderr == "error: a --tag cannot be empty\n"
    assert '"exit": 2' in done.stdout


def test_a_usage_error_keeps_status_two() -> None:
    done = _run(*CLI, "--no-such-option")
    assert done.returncode == 2
    assert "No such option" in done.stderr


def test_output_written_to_a_pipe_is_all_there() -> None:
    done = _run(*CLI, "--help")
    assert done.returncode == 0
    assert "Restore a snapshot" in done.stdout and done.stdout.endswith("\n")


def test_exit_handlers_run_and_a_message_exits_one() -> None:
    script = (
        "import atexit, sys\n"
        "from p2pbackup.cli.app import leave\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "sys.stdout.write('unflushed')\n"
        "leave(sys.argv[1] if sys.argv[1] == 'why' else int(sys.argv[1]))\n"
    )
    done = _run(sys.executable, "-c", script, "7")
    assert (done.returncode, done.stdout) == (7, "unflushedhandler ran\n")
    done = _run(sys.executable, "-c", script, "why")
    assert (done.returncode, done.stderr) == (1, "why\n")


def test_a_capacity_without_a_unit_is_refused_in_words(tmp_path: Path) -> None:
    done = _run(*CLI, "--home", str(tmp_path), "serve", "--capacity", "50")
    assert done.returncode == 2
    assert done.stderr == "error: --capacity 50 is 50 bytes: give a unit, e.g. 50GiB\n"


def test_a_tag_that_is_not_text_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "--home", str(tmp_path), "backup", str(tmp_path), "--tag", b"caf\xe9"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == b"error: a --tag must be printable text, in UTF-8\n"
