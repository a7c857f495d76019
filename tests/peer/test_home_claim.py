"""One peer per home: a live one refuses a second in one line; a killed one leaves
nothing that stops the next start."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from p2pbackup.peer.home import Home, HomeError

# A process that claims the home, says so, and waits to be killed.
_HOLDER = """
import sys, time
from pathlib import Path
from p2pbackup.peer.home import Home
claim = Home(Path(sys.argv[1])).claim()
print("claimed", flush=True)
time.sleep(600)
"""


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.create()
    return home


def _leave_behind(home: Home, pid: int) -> None:
    """What a SIGKILLed peer leaves: its state file and a bound socket nobody serves."""
    home.write_state({"node_id": "ab", "listen": "127.0.0.1:7400", "pid": pid})
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(home.control_socket))
    sock.close()


def _claimed_by_another_process(home: Home) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(home.path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "claimed"
    return holder


def test_a_second_claim_is_refused_in_one_line_naming_the_running_peer(home: Home) -> None:
    holder = _claimed_by_another_process(home)
    try:
        home.write_state({"node_id": "ab", "listen": "127.0.0.1:7400", "pid": holder.pid})
        with pytest.raises(HomeError) as refused:
            home.claim()
        message = str(refused.value)
        assert "\n" not in message
        assert "already running" in message and f"pid {holder.pid}" in message
        assert "127.0.0.1:7400" in message
        # The live peer's files are left alone.
        assert json.loads(home.state_file.read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_what_a_killed_peer_left_is_cleared_by_the_next_claim(home: Home) -> None:
    holder = _claimed_by_another_process(home)
    _leave_behind(home, holder.pid)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    claim = home.claim()  # the kernel dropped the dead process's lock
    try:
        assert not home.state_file.exists()
        assert not home.control_socket.exists()
    finally:
        claim.release()
    again = home.claim()  # released: the next start takes it
    again.release()
