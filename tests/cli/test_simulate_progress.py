"""`simulate --json` keeps stdout for the JSON; progress goes to stderr only when a
terminal is there to read it, so a script's captured stderr stays clean."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

COMMAND = ["-m", "p2pbackup.cli.app", "simulate", "lookups", "--peers", "20", "--lookups", "5"]


def _run(out: Path, stderr: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *COMMAND, "--json", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
        check=True,
    )


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end is closed: nothing more
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_sees_progress_beside_the_json(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        run = _run(tmp_path / "tty", terminal)
        os.close(terminal)
        terminal = -1
        shown = _drain(controller)
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert json.loads(run.stdout)["peers"] == 20
    assert "lookup" in shown.lower()


def test_a_captured_stderr_stays_empty(tmp_path: Path) -> None:
    run = _run(tmp_path / "pipe", subprocess.PIPE)
    assert json.loads(run.stdout)["peers"] == 20
    assert run.stderr == ""
