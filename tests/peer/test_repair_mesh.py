"""Repair across sixteen real peer processes while the owner is away."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from cli.localmesh import LocalMesh

pytestmark = pytest.mark.timeout(300)
PEERS = 16


def test_holders_killed_while_the_owner_is_away_are_replaced_within_a_minute(
    tmp_path: Path,
) -> None:
    serve = ("--rpc-timeout", "2s", "--audit-interval", "2s")
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=serve) as mesh:
        mesh.start()
        assert mesh.wait_until(
            lambda: all(
                mesh.control(i, "status")["routing_table_size"] == PEERS - 1 for i in range(PEERS)
            ),
            timeout=30,
        )
        source = tmp_path / "data"
        source.mkdir()
        rng = random.Random(5)
        for i in range(6):
            (source / f"file{i}.bin").write_bytes(rng.randbytes(1_500_000))
        owner = 0
        backup = mesh.cli_json(owner, "backup", str(source))
        assert backup["packs"] >= 2
        assert mesh.cli_json(owner, "check")["min_live_shares"] == 10

        mesh.stop_peer(owner, signal.SIGTERM)
        holders = sorted(
            (p for p in mesh.peers if p.alive),
            key=lambda p: -mesh.control(p.index, "status")["shares_held"],
        )
        for peer in holders[:3]:  # the three busiest holders die
            mesh.stop_peer(peer.index, signal.SIGKILL)

        def repaired() -> bool:
            stats = [mesh.control(p.index, "status")["maintenance"] for p in mesh.peers if p.alive]
            return sum(s["shares_rebuilt"] for s in stats) >= 3

        assert mesh.wait_until(repaired, timeout=60, step=1.0)
        mesh.start_peer(owner, bootstrap=mesh.peers[5].listen)
        assert mesh.wait_until(
            lambda: mesh.control(owner, "status")["routing_table_size"] >= 10, timeout=30
        )
        health = mesh.cli_json(owner, "check")
        assert health["unrecoverable"] == 0
        assert health["min_live_shares"] == 10, health
        assert health["healthy"] == health["packs"]
