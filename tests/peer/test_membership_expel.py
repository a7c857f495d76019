"""Expelling a member of a twelve-peer mesh: refused everywhere, its shares rebuilt."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import trio

from p2pbackup.cli.localmesh import LocalMesh
from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.peer.home import Home
from tests.peer.test_membership_mesh import dial_as
from tests.peer.trees import random_files

pytestmark = pytest.mark.timeout(300)
PEERS = 12
REFUSED_WITHIN = 60.0


def test_an_expelled_member_is_refused_by_every_member_and_its_shares_rebuilt(
    tmp_path: Path,
) -> None:
    serve = ("--rpc-timeout", "2s", "--audit-interval", "2s")
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=serve) as mesh:
        mesh.start()
        mesh.wait_for_tables()
        owner = 0  # the founder backs up too
        source = random_files(tmp_path / "data", 3, 1_000_000, random.Random(8))
        mesh.cli_json(owner, "backup", str(source))
        assert mesh.cli_json(owner, "check")["min_live_shares"] == 10
        holders = [i for i in range(1, PEERS) if mesh.status(i)["shares_held"] > 0]
        gone = holders[0]
        node_id = mesh.status(gone)["node_id"]
        home = Home(mesh.peers[gone].home)
        saved = SavedMesh.from_bytes(
            home.read_mesh() or b"", home.member_identity(), home.identity().public_key
        )

        expelled = mesh.cli_json(owner, "expel", node_id[:10])
        assert expelled["nodes"] == [node_id]
        at = time.monotonic()
        members = [i for i in range(PEERS) if i != gone]
        for index in members:
            address = mesh.peers[index].listen
            assert address is not None

            def refused(address: str = address) -> bool:
                return trio.run(dial_as, home.identity(), saved, address) != "answered"

            mesh.wait_for(f"peer {index} refusing the expelled", refused, step=0.5)
        took = time.monotonic() - at
        assert took < REFUSED_WITHIN, took
        for index in members:
            log = (mesh.peers[index].home / "serve.log").read_text()
            assert ": expelled from this mesh" in log, index  # the handshake's refusal
            assert node_id not in {p["node_id"] for p in mesh.cli_json(index, "peers")["peers"]}

        def rebuilt() -> bool:
            report = mesh.cli_json(owner, "check")
            return bool(report["min_live_shares"] == 10 and report["healthy"] == report["packs"])

        mesh.wait_for("every pack back at 10 shares", rebuilt, step=2.0)
        for index in members:
            roll = {m["member"]: m for m in mesh.cli_json(index, "members")["members"]}
            assert roll[expelled["member"]]["expelled"], index
