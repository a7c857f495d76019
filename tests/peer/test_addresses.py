"""Addresses of real peers: listening anywhere with an advertised address, IPv6 end to end,
and `status` saying how a peer is reachable once others checked it.

Peers listen on 0.0.0.0 and advertise 127.0.0.N: others reach them there, check it by
dialling back, and a backup spreads over them and restores. A mesh on [::1] does the
same over IPv6. A peer that advertises a closed port is told so by its checkers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from tests.net.ports import unused_port

pytestmark = pytest.mark.timeout(300)


def _tree(root: Path) -> Path:
    rng = random.Random(5)
    root.mkdir(parents=True)
    for i in range(12):
        (root / f"file-{i:02d}.bin").write_bytes(rng.randbytes(rng.randrange(1, 40_000)))
    return root


def _back_up_and_restore(mesh: LocalMesh, tmp_path: Path) -> None:
    mesh.cli_json(0, "config", "set", "redundancy", "2-of-4")
    tree = _tree(tmp_path / "tree")
    assert mesh.cli_json(0, "backup", str(tree))["files"] == 12
    restored = mesh.cli_json(0, "restore", "latest", "--target", str(tmp_path / "out"))
    assert restored["files_failed"] == 0
    files, _, problems = compare_trees(tree, tmp_path / "out" / "tree")
    assert files == 12 and problems == []


def _reachability(mesh: LocalMesh, index: int) -> dict[str, Any]:
    value = mesh.status(index)["reachability"]
    assert isinstance(value, dict)
    return value


def _wait_reachability(
    mesh: LocalMesh, index: int, what: str, holds: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    mesh.wait_for(f"peer {index}: {what}", lambda: holds(_reachability(mesh, index)), step=0.2)
    return _reachability(mesh, index)


def test_peers_listening_anywhere_are_reached_at_their_advertised_addresses(
    tmp_path: Path,
) -> None:
    with LocalMesh(tmp_path / "mesh", 4, host="0.0.0.0") as mesh:
        mesh.init_all()
        ports = [unused_port() for _ in range(4)]
        for index, port in enumerate(ports):
            mesh.serve_args = ("--advertise", f"127.0.0.{index + 2}:{port}", "--rpc-timeout", "3s")
            mesh.start_peer(index, port=port, bootstrap=None if index == 0 else True)
            if index == 0:  # alone: nobody has checked it yet
                alone = _reachability(mesh, 0)
                assert alone["state"] == "unknown" and alone["addresses"] == []
                assert alone["main"] == f"127.0.0.2:{port}"
                plain = mesh.cli(0, "status", check=True).stdout
                assert plain.rstrip().endswith("unknown: no peer has checked yet")
        assert mesh.bootstrap == f"127.0.0.2:{ports[0]}"  # its state names the advertised one
        mesh.wait_for_tables()
        for index, port in enumerate(ports):
            advertised = f"127.0.0.{index + 2}:{port}"
            seen = _wait_reachability(mesh, index, "public", lambda r: r["state"] == "public")
            assert seen["main"] == advertised and advertised in seen["addresses"]
        peers = mesh.cli_json(1, "peers")["peers"]
        assert {p["address"] for p in peers} == {
            f"127.0.0.{i + 2}:{port}" for i, port in enumerate(ports) if i != 1
        }
        plain = mesh.cli(0, "status", check=True).stdout
        assert f"reachable at 127.0.0.2:{ports[0]} (public)" in plain
        _back_up_and_restore(mesh, tmp_path)


def test_an_advertised_address_nobody_can_dial_is_not_confirmed(tmp_path: Path) -> None:
    with LocalMesh(tmp_path / "mesh", 3, serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.start()
        closed = f"127.0.0.1:{unused_port()}"
        mesh.stop_peer(2)
        mesh.serve_args = ("--rpc-timeout", "3s", "--advertise", closed)
        mesh.start_peer(2)
        seen = _wait_reachability(mesh, 2, "checked", lambda r: bool(r["unconfirmed"]))
        assert closed not in seen["addresses"] and closed not in seen["routes"]
        assert [u["address"] for u in seen["unconfirmed"]] == [closed]
        assert "peers could dial it" in seen["unconfirmed"][0]["reason"]
        assert f"{closed} not reachable" in seen["detail"]
        plain = mesh.cli(2, "status", check=True).stdout
        assert f"{closed} not reachable" in plain.splitlines()[-1]


def test_an_ipv6_mesh_backs_up_and_restores(tmp_path: Path) -> None:
    try:
        unused_port("::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with LocalMesh(tmp_path / "mesh", 4, host="[::1]", serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.start()
        assert mesh.bootstrap.startswith("[::1]:")
        mesh.wait_for_tables()
        seen = _wait_reachability(mesh, 0, "public", lambda r: r["state"] == "public")
        assert seen["addresses"] == [mesh.bootstrap]
        _back_up_and_restore(mesh, tmp_path)


@pytest.mark.parametrize("value", ["not..valid:7000", "not..valid", "0.0.0.0:7000"])
def test_a_malformed_advertised_address_is_one_line_and_exit_2(tmp_path: Path, value: str) -> None:
    with LocalMesh(tmp_path / "mesh", 1) as mesh:
        mesh.init_all()
        result = mesh.cli(0, "serve", "--listen", "127.0.0.1:0", "--advertise", value)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --advertise")
