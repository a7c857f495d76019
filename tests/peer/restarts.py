"""Helpers for tests that kill and restart real peer processes, and recover an owner."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import trio

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.crypto.identity import Identity
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.mesh.gate import MeshGate
from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.net.handshake import OPEN_GATE, Gate
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.peer.home import Home
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.messages import ShareData
from p2pbackup.wire.messages import Message

# The owner's peer logs, at debug level, which holder acknowledged which share.
_PLACED = re.compile(r"placed ([0-9a-f]{40}): ((?:\d+@[0-9a-f]{40} ?)+)")


def engine_children(pid: int) -> set[int]:
    """The engine processes peer `pid` started (one waits, ready, at all times)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"engine_child" in cmdline:
            found.add(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def restart(mesh: LocalMesh, index: int, *extra: str, port: int = 0) -> None:
    """Start peer `index` again on its home, with `extra` serve options after the mesh's."""
    kept = mesh.serve_args
    mesh.serve_args = (*kept, *extra)
    try:
        mesh.start_peer(index, port=port)
    except RuntimeError:  # its port was taken meanwhile: a new one, as after a reboot
        if port == 0:
            raise
        mesh.start_peer(index)
    finally:
        mesh.serve_args = kept


def kill_all(mesh: LocalMesh) -> None:
    """SIGKILL every running peer at once, as a power cut would stop them, then reap."""
    running = [p for p in mesh.peers if p.alive and p.process is not None]
    for peer in running:
        assert peer.process is not None
        peer.process.send_signal(signal.SIGKILL)
    for peer in running:
        assert peer.process is not None
        peer.process.wait()
        peer.process = None


def acknowledged(mesh: LocalMesh, owner: int, holder_id: str) -> set[tuple[bytes, int]]:
    """(pack id, share index) of every share the owner counted as stored by `holder_id`."""
    text = (mesh.peers[owner].home / "serve.log").read_text(errors="replace")
    found = set()
    for pack_hex, placements in _PLACED.findall(text):
        for placement in placements.split():
            index, node = placement.split("@")
            if node == holder_id:
                found.add((bytes.fromhex(pack_hex), int(index)))
    return found


def owner_keys(mesh: LocalMesh, owner: int) -> OwnerKeys:
    return OwnerKeys.from_master((mesh.peers[owner].home / "owner.key").read_bytes())


def member_gate(home: Path, client: Identity) -> Gate:
    """The gate of another machine of the home's member: the member key binds `client`."""
    mine = Home(home)
    saved = SavedMesh.from_bytes(mine.read_mesh() or b"", mine.member_identity(), client.public_key)
    return OPEN_GATE if saved.state is None else MeshGate(saved.state)


def served(
    keys: OwnerKeys, address: tuple[str, int], wanted: set[tuple[bytes, int]], home: Path
) -> dict[tuple[bytes, int], str]:
    """Ask the holder at `address` for each share as its owner does (GET_SHARE, signed);
    the problem with each one not served intact, by share."""

    async def refuse(remote: Remote, message: Message) -> Message:
        raise P2PBackupError("this client serves nothing")

    async def main() -> dict[tuple[bytes, int], str]:
        client = Identity.generate()
        transport = TcpTransport(client, ("127.0.0.1", 0), gate=member_gate(home, client))
        problems: dict[tuple[bytes, int], str] = {}
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.serve, refuse)
            for pack_id, index in sorted(wanted):
                request = owner_fetch(keys.identity, pack_id, client.node_id)
                try:
                    reply = (await transport.request(address, request, 30.0)).message
                except P2PBackupError as exc:
                    problems[(pack_id, index)] = f"no answer: {exc}"
                    continue
                problem = _check(reply, keys, index)
                if problem is not None:
                    problems[(pack_id, index)] = problem
            await transport.aclose()
            nursery.cancel_scope.cancel()
        return problems

    return trio.run(main)


def _check(reply: Message, keys: OwnerKeys, index: int) -> str | None:
    if not isinstance(reply, ShareData):
        return f"answered {type(reply).__name__}"
    descriptor = ShareDescriptor.from_bytes(reply.descriptor)
    if descriptor.owner != keys.identity.public_key or not descriptor.verify():
        return "descriptor not signed by the owner"
    if reply.index != index or not descriptor.check_share(index, reply.data):
        return f"share {reply.index} does not verify as share {index}"
    return None


def pid_of(mesh: LocalMesh, index: int) -> int:
    process = mesh.peers[index].process
    assert process is not None
    return process.pid


def address_of(mesh: LocalMesh, index: int) -> tuple[str, int]:
    listen = mesh.peers[index].listen
    assert listen is not None
    host, port = listen.rsplit(":", 1)
    return host, int(port)


def recover_and_restore(
    mesh: LocalMesh, owner: int, tree: Path, ids: list[str], target: Path
) -> int:
    """The owner loses everything but the phrase: a new home lists exactly the snapshots
    `ids` and restores `tree` intact under `target`. Returns the new peer's index."""
    phrase = mesh.peers[owner].recovery_phrase
    assert phrase is not None
    fresh = mesh.add_peer()
    mesh.cli(fresh.index, "init", "--recover", check=True, stdin=phrase)
    mesh.start_peer(fresh.index, bootstrap=mesh.peers[1].listen)
    mesh.wait_for_tables(at_least=8, indices=[fresh.index])
    seen = mesh.cli_json(fresh.index, "snapshots")["snapshots"]
    assert [s["id"] for s in seen] == ids
    recovered = mesh.cli_json(fresh.index, "restore", "latest", "--target", str(target))
    assert recovered["files_failed"] == 0
    files, _, problems = compare_trees(tree, target / tree.name)
    assert files > 0 and problems == []
    return fresh.index
