"""`serve --json`: one JSON object per line, as each thing happens, and nothing else."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import IO, Any

import pytest

from p2pbackup.cli.localmesh import CLI, LocalMesh

pytestmark = pytest.mark.timeout(120)


def next_event(stdout: IO[str], seen: list[dict[str, Any]]) -> dict[str, Any]:
    line = stdout.readline()
    assert line, f"serve closed its output after {seen}"
    event = json.loads(line)  # every line is one JSON object
    assert isinstance(event["time"], float)
    seen.append(event)
    return event


def test_serve_json_prints_each_event_as_it_happens(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "one", 1)
    mesh.init_all()
    home = mesh.peers[0].home
    args = ["--listen", "127.0.0.1:0", "--exempt-blocks", "loopback", "--audit-interval", "1s"]
    process = subprocess.Popen(
        [*CLI, "--home", str(home), "serve", "--json", "--log-file", str(tmp_path / "log"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, Any]] = []
    try:
        assert process.stdout is not None
        listening = next_event(process.stdout, seen)
        assert listening["event"] == "listening" and listening["pid"] == process.pid
        assert listening["listen"].startswith("127.0.0.1:")
        assert next_event(process.stdout, seen)["event"] == "joined"
        # A question a script polls is no event; an owner's request is two.
        assert mesh.cli(0, "status").returncode == 0
        failed = mesh.cli(0, "snapshots")  # one peer alone cannot read the list
        assert failed.returncode != 0
        while (event := next_event(process.stdout, seen))["event"] == "maintenance_round":
            pass
        assert event == {**event, "event": "request_started", "op": "snapshots"}
        while (event := next_event(process.stdout, seen))["event"] == "maintenance_round":
            pass
        assert event["event"] == "request_finished" and event["op"] == "snapshots"
        assert event["ok"] is False and event["error"] in failed.stderr
        while next_event(process.stdout, seen)["event"] != "maintenance_round":
            pass
        assert {"rounds", "audits", "repairs"} <= set(seen[-1])
        process.send_signal(signal.SIGTERM)
        while next_event(process.stdout, seen)["event"] != "stopping":
            pass
        assert seen[-1]["signal"] == "SIGTERM"
        while next_event(process.stdout, seen)["event"] == "maintenance_round":
            pass
        assert seen[-1]["event"] == "stopped"
        assert process.stdout.read() == ""
        assert process.wait(30) == 0
        assert process.stderr is not None and process.stderr.read() == ""  # the log is in its file
        assert "listening on" in (tmp_path / "log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_status_wait_gives_up_in_one_line_when_no_peer_starts(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "idle", 1)
    mesh.init_all()
    result = mesh.cli(0, "status", "--wait", "1s")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: the peer of {mesh.peers[0].home} is not running after 1 s\n"
