"""The README's by-hand examples run as written: each `sh` block, through bash.

Only what a reader's machine supplies differs: `~` is a fresh home, the
`p2pbackup` on PATH runs this tree's code, and the addresses are loopback
ones with free ports (a friend's peer of the README is one the test runs).
"""

from __future__ import annotations

import filecmp
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pbackup.cli.localmesh import LocalMesh
from tests.net.ports import unused_port

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
# Seconds a block may run: far more than it needs (about 20 s), less than the test's timeout.
BLOCK_DEADLINE = 200
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def section_blocks(title: str) -> list[str]:
    """The `sh` blocks of the README section headed `title` (up to the next heading)."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return BLOCK.findall(text[start : end if end > 0 else None])


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a reader who ran `. .venv/bin/activate`: a home of their own,
    and `p2pbackup` on PATH."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    command = bin_dir / "p2pbackup"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m p2pbackup.cli.app "$@"\n')
    command.chmod(0o755)
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT))
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env.pop("P2PBACKUP_HOME", None)
    yield env


@contextmanager
def bash(block: str, env: dict[str, str], out: Path) -> Iterator[Ran]:
    """Run `block` through `bash -e` in a process group of its own, output to files
    (peers it starts in the background would hold a pipe open); on the way out,
    whatever of the group still runs gets SIGTERM, then SIGKILL."""
    with open(out.with_suffix(".out"), "w") as stdout, open(out.with_suffix(".err"), "w") as err:
        process = subprocess.Popen(
            ["bash", "-e", "-c", block], env=env, stdout=stdout, stderr=err, start_new_session=True
        )
    try:
        try:
            code = process.wait(BLOCK_DEADLINE)
        except subprocess.TimeoutExpired:
            code = None  # a command that never returns: the block does not run as written
        read = out.with_suffix(".out").read_text(), out.with_suffix(".err").read_text()
        yield Ran(code, *read)
    finally:
        end_group(process)


@dataclass(frozen=True)
class Ran:
    code: int | None  # None: still running at the deadline
    stdout: str
    stderr: str


def end_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + 15
        while time.monotonic() < end and (process.poll() is None or _group_alive(process.pid)):
            time.sleep(0.05)
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_running_peers_by_hand_runs_as_written(reader: dict[str, str], tmp_path: Path) -> None:
    (block,) = section_blocks("Running peers by hand")
    a, b = unused_port("127.0.0.1"), unused_port("127.0.0.1")
    script = block.replace("127.0.0.1:7400", f"127.0.0.1:{a}").replace(
        "127.0.0.1:7401", f"127.0.0.1:{b}"
    )
    home = Path(reader["HOME"])
    with bash(script, reader, tmp_path / "by-hand") as done:
        assert done.code == 0, f"{done.stdout}\n{done.stderr}"
        # The log went to the files named, not to the terminal.
        assert "INFO" not in done.stdout + done.stderr
        assert "listening" in (home / "peerB" / "serve.log").read_text()
        assert f"127.0.0.1:{a}" in done.stdout  # peers lists peerA, with when it was seen
        assert "LAST SEEN" in done.stdout
        # `kill %1 %2` stopped both: each removes its state file on the way out.
        for peer in ("peerA", "peerB"):
            deadline = time.monotonic() + 30
            while (home / peer / "peer.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not (home / peer / "peer.json").exists()


def make_files(home: Path) -> dict[str, bytes]:
    files = {
        "Documents/taxes/2025.txt": b"income and outgoings\n" * 500,
        "Documents/taxes/receipts.csv": os.urandom(50_000),
        "Documents/letter.txt": b"dear friend\n",
        "Documents/draft.tmp": b"excluded\n",
        "Photos/holiday.jpg": os.urandom(200_000),
    }
    for name, data in files.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(data)
    return files


def test_backing_up_with_friends_runs_as_written_on_a_mesh_of_four(
    reader: dict[str, str], tmp_path: Path
) -> None:
    (block,) = section_blocks("Backing up with friends")
    home = Path(reader["HOME"])
    make_files(home)
    # Three friends' peers, each in an address block of its own as on a real LAN.
    with LocalMesh(tmp_path / "friends", 3) as friends:
        friends.host = "127.0.2.1"
        friends.init_all()  # the first friend founds the mesh and invites the others
        for index in range(3):
            friends.host = f"127.0.{index + 2}.1"
            friends.start_peer(index, bootstrap=None if index == 0 else True)
        friends.wait_for_tables()
        ours = f"127.0.1.1:{unused_port('127.0.1.1')}"
        script = block.replace("192.168.1.20:7400", ours).replace(
            "p2pb1-your-friends-invite-code", friends.invite()
        )
        with bash(script, reader, tmp_path / "friends-block") as done:
            assert done.code == 0, f"{done.stdout}\n{done.stderr}"
            assert "INFO" not in done.stdout + done.stderr
    restored = home / "restored" / "Documents" / "taxes"
    assert sorted(p.name for p in restored.iterdir()) == ["2025.txt", "receipts.csv"]
    for name in ("2025.txt", "receipts.csv"):
        assert filecmp.cmp(restored / name, home / "Documents" / "taxes" / name, shallow=False)
    assert not (home / "restored" / "Photos").exists()  # --include kept to taxes
