"""Real peers in separate processes over TCP on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.localmesh import SAFETY_DEADLINE, LocalMesh

pytestmark = pytest.mark.timeout(180)


def _mesh10(root: Path) -> Iterator[LocalMesh]:
    with LocalMesh(root, 10, serve_args=("--rpc-timeout", "2s")) as mesh:
        mesh.start()
        yield mesh


@pytest.fixture
def mesh10(tmp_path: Path) -> Iterator[LocalMesh]:
    """A mesh just launched, for the test that times its start."""
    yield from _mesh10(tmp_path / "mesh")


@pytest.fixture(scope="module")
def shared10(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    """One mesh for the tests that each take a different peer down (3 crashes, 5 stops)
    and use only peers the other leaves running."""
    yield from _mesh10(tmp_path_factory.mktemp("mesh"))


def test_ten_processes_learn_each_other(mesh10: LocalMesh) -> None:
    # Measured from the launch of the nine processes, their start-up included. How
    # fast is the bench's "mesh ready" row (about 7 s alone on two cores); here the
    # bound only catches a mesh that never completes, as the suite's other worker
    # may be starting meshes of its own meanwhile.
    took = mesh10.wait_for_tables() - mesh10.launched_at
    print(f"all ten routing tables complete {took:.1f}s after launch")
    assert took < 30
    listed = mesh10.cli_json(4, "peers")["peers"]
    others = {p.listen for p in mesh10.peers if p.index != 4}
    assert {p["address"] for p in listed} == others
    status = mesh10.cli_json(4, "status")
    assert status["listen"] == mesh10.peers[4].listen
    assert len(status["node_id"]) == 40


def test_a_record_written_through_one_peer_is_read_through_another(shared10: LocalMesh) -> None:
    shared10.wait_for_tables()
    written = shared10.cli_json(2, "debug", "record-put", "greeting", "hello mesh")
    assert written["acks"] >= 3
    read = shared10.cli_json(7, "debug", "record-get", written["key"])
    assert read["found"] and read["values"] == ["hello mesh"]
    # A crashed peer does not stop the quorum read.
    shared10.stop_peer(3, signal.SIGKILL)
    again = shared10.cli_json(8, "debug", "record-get", written["key"])
    assert again["values"] == ["hello mesh"]


def test_sigterm_stops_a_peer_cleanly(shared10: LocalMesh) -> None:
    home = shared10.peers[5].home
    assert (home / "peer.json").exists()
    assert shared10.stop_peer(5, signal.SIGTERM) == 0
    assert not (home / "peer.json").exists()
    gone = shared10.cli(5, "status", "--json")
    assert gone.returncode != 0
    assert gone.stderr.count("\n") == 1 and "no peer is running" in gone.stderr


def test_commands_without_a_running_peer_fail_with_one_line(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "idle", 1)
    mesh.init_all()
    for command in (["status", "--json"], ["peers", "--json"]):
        result = mesh.cli(0, *command)
        assert result.returncode != 0
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        # A script reads the same line, and the status, as one JSON object.
        answer = json.loads(result.stdout)
        assert answer == {"error": result.stderr[len("error: ") : -1], "exit": result.returncode}


def test_init_json_prints_the_node_id_and_refuses_twice(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "fresh", 1)
    first = mesh.cli(0, "init", "--json")
    assert first.returncode == 0
    assert len(json.loads(first.stdout)["node_id"]) == 40
    second = mesh.cli(0, "init")
    assert second.returncode != 0 and "already initialised" in second.stderr


def test_p2pbackup_home_environment_works_like_the_option(tmp_path: Path) -> None:
    import os
    import subprocess

    from p2pbackup.cli.localmesh import CLI

    env = dict(os.environ, P2PBACKUP_HOME=str(tmp_path / "viaenv"))
    result = subprocess.run([*CLI, "init", "--json"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "viaenv" / "node.key").exists()


def test_a_wait_that_never_comes_true_names_what_it_waited_for(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "idle", 1)
    with pytest.raises(TimeoutError, match=r"the impossible: not so after 0\.2s"):
        mesh.wait_for("the impossible", lambda: False, deadline=0.2)
    looks: list[float] = []

    def third_look() -> bool:
        looks.append(time.monotonic())
        return len(looks) == 3

    assert mesh.wait_for("a third look", third_look, step=0.01) == pytest.approx(looks[-1])


def test_a_peer_that_cannot_start_fails_the_wait_at_once(tmp_path: Path) -> None:
    # Never initialised: `serve` exits with an error, and the wait says so with its log.
    with LocalMesh(tmp_path / "broken", 1) as mesh:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="peer 0 exited early") as info:
            mesh.start_peer(0, bootstrap=None)
        assert "init" in str(info.value)
        assert time.monotonic() - started < SAFETY_DEADLINE / 2
