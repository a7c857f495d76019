"""Squatting and junk against real peer processes: a hostile identity, speaking the
project's own protocol with its own key, puts shares under the honest owner's pack
ids, with leases of 2^40 s and beyond its quota. The owner's repair still places its
real shares on the squatted peers, junk is kept no longer than the holder's maximum
lease, and one identity cannot take more than its quota of a peer's capacity."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh, LocalPeer
from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.shares.lease_rules import MAX_LEASE_SECONDS
from p2pbackup.shares.messages import PutShare
from p2pbackup.simulations.hostile import junk_shares
from p2pbackup.wire.messages import Message
from tests.peer.trees import random_files

pytestmark = pytest.mark.timeout(300)
PEERS = 13  # the owner and twelve storage peers: after one dies, two hold none of a pack
N = 10
OWNER = 0


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    """16 MiB offered per peer: the default owner quota is half of it."""
    serve = ("--capacity", "16MiB", "--rpc-timeout", "2s", "--audit-interval", "1h")
    # An open mesh: the squatter is an identity the handshake admits (a member gone bad).
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=serve, open_mesh=True) as started:
        started.start()
        started.wait_for_tables()
        yield started


def held(peer: LocalPeer) -> list[tuple[bytes, int, bytes, int]]:
    """(pack id, index, owner, lease expiry) of every share the peer's store indexes."""
    db = sqlite3.connect(f"file:{peer.home / 'shares' / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT pack_id, idx, owner, lease_expiry FROM shares").fetchall()
    finally:
        db.close()
    return [(bytes(p), int(i), bytes(o), int(e)) for p, i, o, e in rows]


def owner_packs(peer: LocalPeer) -> list[bytes]:
    db = sqlite3.connect(f"file:{peer.home / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        return [bytes(row[0]) for row in db.execute("SELECT pack_id FROM packs")]
    finally:
        db.close()


def address(peer: LocalPeer) -> tuple[str, int]:
    assert peer.listen is not None
    host, port = peer.listen.rsplit(":", 1)
    return host, int(port)


def put_all(identity: Identity, puts: list[tuple[tuple[str, int], PutShare]]) -> list[str | None]:
    """Send each put from `identity` over TCP, one after another; None where it was stored,
    else the refusal."""

    async def refuse(remote: Remote, message: Message) -> Message:
        raise P2PBackupError("this client serves nothing")

    async def main() -> list[str | None]:
        transport = TcpTransport(identity, ("127.0.0.1", 0))
        answers: list[str | None] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.serve, refuse)
            for where, message in puts:
                try:
                    await transport.request(where, message, 30.0)
                    answers.append(None)
                except P2PBackupError as exc:
                    answers.append(str(exc))
            await transport.aclose()
        return answers

    return trio.run(main)


def test_a_squatted_slot_takes_the_owners_share_and_junk_is_bounded(
    tmp_path: Path, mesh: LocalMesh
) -> None:
    source = random_files(tmp_path / "data", 4, 1_000_000, random.Random(15))
    mesh.cli_json(OWNER, "backup", str(source))
    assert mesh.cli_json(OWNER, "check")["min_live_shares"] == N
    owner_key = next(o for p in mesh.peers[1:] for _, _, o, _ in held(p))
    packs = owner_packs(mesh.peers[OWNER])
    storage = mesh.peers[1:]
    holdings = {p.index: {(pk, i) for pk, i, o, _ in held(p) if o == owner_key} for p in storage}

    # One holder dies: each pack it held misses its index there.
    victim = max(storage, key=lambda p: len(holdings[p.index]))
    mesh.stop_peer(victim.index, signal.SIGKILL)
    missing = dict(sorted(holdings[victim.index]))
    assert missing and set(missing) <= set(packs)
    # The squatter puts a 1-byte share of its own, leased for 2^40 s, in each missing slot
    # on every live peer that holds none of that pack: where the repair must put it.
    squatter = Identity.generate()
    puts = []
    for pack_id, index in missing.items():
        junk = junk_shares(squatter, pack_id, N)[index]
        for peer in storage:
            if peer.alive and not any(pk == pack_id for pk, _ in holdings[peer.index]):
                puts.append((peer, junk))
    assert len(puts) >= 2 * len(missing)
    assert put_all(squatter, [(address(p), m) for p, m in puts]) == [None] * len(puts)

    repaired = mesh.cli_json(OWNER, "repair")
    assert mesh.cli_json(OWNER, "check")["min_live_shares"] == N, repaired
    now = time.time()
    for pack_id, index in missing.items():
        # The rebuilt share sits beside the squatter's junk on a squatted peer.
        beside = [
            p
            for p, m in puts
            if m.pack_id == pack_id and (pack_id, index, owner_key) in {r[:3] for r in held(p)}
        ]
        assert beside, f"share {index} of {pack_id.hex()[:12]} was not placed where squatted"
    squatted = {p.index: p for p, _ in puts}.values()
    junk_leases = [e for p in squatted for _, _, o, e in held(p) if o == squatter.public_key]
    assert len(junk_leases) == len(puts)
    assert max(junk_leases) <= now + MAX_LEASE_SECONDS + 60  # capped, not 2^40 s

    # One identity, however sound its shares, gets at most its quota (8 MiB) of a peer.
    hog = Identity.generate()
    target = next(p for p in storage if p.alive)
    big = [
        junk_shares(hog, random.Random(n).randbytes(20), 1, data=bytes([n]) * 3 * 2**20)[0]
        for n in range(3)
    ]
    answers = put_all(hog, [(address(target), m) for m in big])
    assert answers[:2] == [None, None]
    assert answers[2] is not None and "owner quota" in answers[2]
    assert mesh.status(target.index)["bytes_used"] < 16 * 2**20

    restored = mesh.cli_json(OWNER, "restore", "latest", "--target", str(tmp_path / "back"))
    assert restored["files_failed"] == 0
    files, _, problems = compare_trees(source, tmp_path / "back" / source.name)
    assert files == 4 and problems == []
