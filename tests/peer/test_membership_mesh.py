"""Private meshes with real peer processes: invites, strangers, forgeries, recovery."""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from p2pbackup.crypto.identity import Identity
from p2pbackup.crypto.keys import member_identity
from p2pbackup.mesh.certs import Certificate
from p2pbackup.mesh.gate import MeshState
from p2pbackup.mesh.invites import Invite, new_secret
from p2pbackup.mesh.roll import Roll
from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.peer.home import Home
from tests.peer.trees import random_files

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def small_mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    with LocalMesh(tmp_path / "mesh", 4, serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.start()
        mesh.wait_for_tables()
        yield mesh


def _logged(mesh: LocalMesh, index: int, text: str) -> bool:
    return text in (mesh.peers[index].home / "serve.log").read_text(errors="replace")


def _peer_ids(mesh: LocalMesh, index: int) -> set[str]:
    return {p["node_id"] for p in mesh.cli_json(index, "peers")["peers"]}


def test_a_member_that_joined_backs_up_and_a_new_machine_restores_from_the_phrase(
    tmp_path: Path, small_mesh: LocalMesh
) -> None:
    mesh, owner, witness = small_mesh, 2, 1
    assert mesh.cli_json(owner, "members")["mesh"] == mesh.cli_json(0, "members")["mesh"]
    mesh.cli_json(owner, "config", "set", "redundancy", "2-of-3")
    source = random_files(tmp_path / "data", 3, 300_000, random.Random(3))
    assert mesh.cli_json(owner, "backup", str(source))["files"] == 3
    # Every member learns the whole roll; the one the new machine will meet, too.
    mesh.wait_for("the roll reaches peer 1", lambda: len(_members(mesh, witness)) == 4)

    phrase = mesh.peers[owner].recovery_phrase
    assert phrase is not None
    mesh.stop_peer(owner, signal.SIGKILL)
    shutil.rmtree(mesh.peers[owner].home)  # the machine is gone
    fresh = mesh.add_peer()
    recovered = mesh.cli_json(fresh.index, "init", "--recover", stdin=phrase)
    assert recovered["mesh"] is None  # it learns its mesh from the member it meets
    mesh.start_peer(fresh.index, bootstrap=mesh.peers[witness].listen)
    mesh.wait_for("the recovered member finds its certificate", lambda: _has_cert(fresh.home))
    out = tmp_path / "out"
    restored = mesh.cli_json(fresh.index, "restore", "latest", "--target", str(out))
    assert restored["files_failed"] == 0
    assert compare_trees(source, out / source.name)[2] == []
    names = {m["member"]: m for m in mesh.cli_json(fresh.index, "members")["members"]}
    assert len(names) == 4 and not any(m["expelled"] for m in names.values())

    # Restarted elsewhere with no --bootstrap (an address from DHCP, a new port), the
    # new machine starts from the address it was first given and from its book.
    mesh.stop_peer(fresh.index, signal.SIGKILL)
    mesh.start_peer(fresh.index, bootstrap=None)
    mesh.wait_for_tables(at_least=3, indices=[fresh.index])
    assert len(mesh.cli_json(fresh.index, "snapshots")["snapshots"]) == 1


def _members(mesh: LocalMesh, index: int) -> list[dict[str, object]]:
    return list(mesh.cli_json(index, "members")["members"])


def _has_cert(home: Path) -> bool:
    data = Home(home).read_mesh()
    if data is None:
        return False
    saved = SavedMesh.from_bytes(data, Identity.generate(), bytes(32))
    return saved.state is not None and saved.state.certificate is not None


def test_strangers_with_valid_identities_get_nothing_and_stay_out_of_every_table(
    small_mesh: LocalMesh,
) -> None:
    mesh = small_mesh
    put = mesh.cli_json(1, "debug", "record-put", "note", "members only")
    outsiders = []
    for how in ("--open-mesh", None):  # an open mesh, and a private mesh of its own
        peer = mesh.add_peer()
        mesh.cli_json(peer.index, "init", *([how] if how else []))
        mesh.start_peer(peer.index, bootstrap=mesh.peers[peer.index % 4].listen)
        outsiders.append(peer.index)
    reasons = {
        "not a member of this mesh: it showed no membership",
        "a member of another mesh",
    }
    for reason in reasons:

        def logged(reason: str = reason) -> bool:
            return any(_logged(mesh, i, reason) for i in range(4))

        mesh.wait_for(reason, logged)
    ids = {mesh.status(i)["node_id"] for i in outsiders}
    for index in range(4):
        assert not ids & _peer_ids(mesh, index)
    for index in outsiders:
        assert _peer_ids(mesh, index) == set()
        got = mesh.cli(index, "debug", "record-get", put["key"], "--json")
        assert got.returncode != 0 and "members only" not in got.stdout
        refused = mesh.cli(index, "backup", str(mesh.peers[index].home / "peer.json"))
        assert refused.returncode != 0


def test_invites_are_spent_once_expire_and_cannot_be_forged(tmp_path: Path) -> None:
    with LocalMesh(tmp_path / "mesh", 1) as mesh:
        mesh.start()
        once = mesh.invite(uses=1)
        first = mesh.add_peer()
        assert mesh.cli_json(first.index, "init", "--join", once, "--peer-only")["joined"]
        _refused(mesh, once, "this invite was already used")

        # A used invite stays used, and a new one is honoured, by a founder killed and restarted.
        later = mesh.invite(uses=1)
        port = int(str(mesh.peers[0].listen).rpartition(":")[2])
        mesh.stop_peer(0, signal.SIGKILL)
        mesh.start_peer(0, bootstrap=None, port=port)  # where the codes say it is
        _refused(mesh, once, "this invite was already used")
        assert mesh.cli_json(mesh.add_peer().index, "init", "--join", later, "--peer-only")

        short = mesh.cli_json(0, "invite", "--expires", "1s")
        mesh.wait_for("the invite expires", lambda: time.time() > short["expires"])
        _refused(mesh, short["code"], "this invite has expired")

        code = mesh.invite()
        tampered = code[:40] + ("a" if code[40] != "a" else "b") + code[41:]
        _refused(mesh, tampered, "invite code")
        # Signed by the founder's own key, but a secret the founder never gave out.
        founder = member_identity(Home(mesh.peers[0].home).owner_master() or b"")
        listen = mesh.peers[0].listen
        assert listen is not None
        unknown = Invite(founder.public_key, (listen,), new_secret(), int(time.time()) + 600)
        _refused(mesh, unknown.encode(founder), "refused the invite (unknown here")
        assert _logged(mesh, 0, "an unknown invite (forged, or not issued by this mesh)")


def _refused(mesh: LocalMesh, code: str, reason: str) -> None:
    peer = mesh.add_peer()
    result = mesh.cli(peer.index, "init", "--join", code)
    assert result.returncode == 1 and reason in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert not (peer.home / "node.key").exists()  # no half-made home


def test_a_certificate_signed_by_a_non_member_is_refused(tmp_path: Path) -> None:
    with LocalMesh(tmp_path / "mesh", 2) as mesh:
        mesh.start()
        mesh.wait_for_tables()
        mesh_id = bytes.fromhex(mesh.cli_json(0, "members")["mesh"])
        forger = mesh.add_peer()
        mesh.cli_json(forger.index, "init", "--peer-only", "--open-mesh")
        home = Home(forger.home)
        node = home.identity()  # a home with no owner acts as its node key
        fake = Certificate.issue(Identity.generate(), node.public_key, "forger", 0)
        passed_off = Certificate(mesh_id, node.public_key, "forger", 0, fake.sig).to_bytes()
        state = MeshState(node, node.public_key, mesh_id, Roll(mesh_id), passed_off)
        home.write_mesh(SavedMesh(False, state).to_bytes())
        mesh.start_peer(forger.index, bootstrap=mesh.peers[1].listen)
        reason = "a certificate not signed by this mesh's founder"
        mesh.wait_for("the forger refused", lambda: _logged(mesh, 1, reason))
        assert _peer_ids(mesh, forger.index) == set()
        assert node.node_id.hex() not in _peer_ids(mesh, 1)


async def dial_as(identity: Identity, saved: SavedMesh, address: str) -> str:
    """What a direct dial with these keys meets: "answered", or the refusal."""
    from p2pbackup.dht.messages import Ping
    from p2pbackup.errors import P2PBackupError
    from p2pbackup.mesh.gate import MeshGate
    from p2pbackup.net.contact import parse_address
    from p2pbackup.net.tcp import TcpTransport

    assert saved.state is not None
    transport = TcpTransport(identity, ("127.0.0.1", 0), gate=MeshGate(saved.state))

    async def nothing(remote: object, message: object) -> Ping:
        raise P2PBackupError("nothing here")

    async with trio.open_nursery() as nursery:
        await nursery.start(transport.serve, nothing)
        try:
            await transport.request(parse_address(address), Ping(), 5.0)
            return "answered"
        except P2PBackupError as exc:
            return str(exc)
        finally:
            nursery.cancel_scope.cancel()
