"""The gate in real handshakes: members in, everyone else out with a one-line reason."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import HandshakeError
from p2pbackup.mesh.certs import Certificate, Revocation, bind
from p2pbackup.mesh.gate import InviteGate, MeshGate, MeshState, OpenMeshGate
from p2pbackup.mesh.invites import Invite, new_secret
from p2pbackup.net.handshake import OPEN_GATE
from tests.mesh.support import NOW, Node, founder, member_of, shake


def test_members_admit_each_other() -> None:
    boss = founder()
    alice, bob = member_of(boss, "alice"), member_of(boss, "bob")
    mine, theirs = shake(alice.identity, alice.gate, bob.identity, bob.gate)
    assert mine.remote.standing == theirs.remote.standing == "member"
    assert bob.state.nodes[alice.member.public_key] == [alice.identity.node_id]
    mine, theirs = shake(alice.identity, alice.gate, boss.identity, boss.gate)
    assert mine.remote.standing == theirs.remote.standing == "member"


def test_a_peer_without_membership_is_refused_both_ways() -> None:
    boss = founder()
    alice = member_of(boss)
    stranger = Identity.generate()
    with pytest.raises(HandshakeError, match="not a member of this mesh"):
        shake(stranger, OPEN_GATE, alice.identity, alice.gate)
    with pytest.raises(HandshakeError, match="not a member of this mesh"):
        shake(alice.identity, alice.gate, stranger, OPEN_GATE)


def test_open_and_private_meshes_refuse_each_other() -> None:
    alice = member_of(founder())
    with pytest.raises(HandshakeError, match="this mesh is open"):
        shake(alice.identity, alice.gate, Identity.generate(), OpenMeshGate())
    a, b = shake(Identity.generate(), OpenMeshGate(), Identity.generate(), OpenMeshGate())
    assert a.remote.standing == b.remote.standing == "open"


def test_a_member_of_another_mesh_is_refused() -> None:
    ours, theirs = member_of(founder()), member_of(founder())
    with pytest.raises(HandshakeError, match="another mesh"):
        shake(theirs.identity, theirs.gate, ours.identity, ours.gate)


def test_a_certificate_signed_by_a_non_member_is_refused() -> None:
    boss = founder()
    alice = member_of(boss)
    mallory, key = Identity.generate(), Identity.generate()
    fake = Certificate.issue(Identity.generate(), key.public_key, "mallory", NOW)
    passed_off = Certificate(boss.state.mesh or b"", key.public_key, "mallory", NOW, fake.sig)
    state = MeshState(key, mallory.public_key, boss.state.mesh, certificate=passed_off.to_bytes())
    with pytest.raises(HandshakeError, match="not signed by this mesh's founder"):
        shake(mallory, MeshGate(state), alice.identity, alice.gate)


def test_a_members_credential_replayed_by_another_node_is_refused() -> None:
    boss = founder()
    alice, bob = member_of(boss), member_of(boss)
    thief = Identity.generate()
    stolen = MeshState(alice.member, alice.identity.public_key, alice.state.mesh)
    stolen.certificate = alice.state.certificate

    class Replay(MeshGate):
        def credential(self, transcript: bytes) -> bytes | None:
            return MeshGate(stolen).credential(transcript)

    with pytest.raises(HandshakeError, match="did not sign its node key"):
        shake(thief, Replay(stolen), bob.identity, bob.gate)


def test_an_expelled_member_is_refused_by_members_that_know() -> None:
    boss = founder()
    alice, bob = member_of(boss), member_of(boss)
    assert boss.state.mesh is not None and bob.state.roll is not None
    revocation = Revocation.issue(boss.member, alice.member.public_key, NOW + 1)
    bob.state.roll.add(revocation.to_bytes())
    with pytest.raises(HandshakeError, match="expelled from this mesh"):
        shake(alice.identity, alice.gate, bob.identity, bob.gate)
    with pytest.raises(HandshakeError, match="expelled from this mesh"):
        shake(bob.identity, bob.gate, alice.identity, alice.gate)


def _invite(boss: Node, secret: bytes | None = None) -> Invite:
    assert boss.state.mesh is not None
    return Invite(boss.state.mesh, ("127.0.0.1:5000",), secret or new_secret(), NOW + 60)


def test_a_known_invite_makes_a_joiner_and_an_unknown_one_is_refused() -> None:
    boss = founder()
    assert boss.state.book is not None
    invite = _invite(boss)
    boss.state.book.add(invite, uses=1)
    newcomer = Identity.generate()
    gate = InviteGate(invite)
    mine, theirs = shake(newcomer, gate, boss.identity, boss.gate)
    assert theirs.remote.standing == "joiner" and mine.remote.standing == "member"
    assert boss.state.joiners[newcomer.node_id] == invite.invite_id
    assert gate.inviter == boss.member.public_key
    with pytest.raises(HandshakeError, match="unknown invite"):
        shake(Identity.generate(), InviteGate(_invite(boss)), boss.identity, boss.gate)


def test_a_member_that_is_not_the_founder_takes_no_invite() -> None:
    boss = founder()
    alice = member_of(boss)
    with pytest.raises(HandshakeError, match="takes none"):
        shake(Identity.generate(), InviteGate(_invite(boss)), alice.identity, alice.gate)


def test_the_newcomer_refuses_an_inviter_of_another_mesh() -> None:
    boss, elsewhere = founder(), member_of(founder())
    # The newcomer answers second here, so its own check is the one that speaks.
    with pytest.raises(HandshakeError, match="not a member of the invite's mesh"):
        shake(elsewhere.identity, elsewhere.gate, Identity.generate(), InviteGate(_invite(boss)))


def test_a_recovered_member_is_admitted_by_the_roll_and_adopts_the_mesh() -> None:
    boss = founder()
    alice, bob = member_of(boss, "alice"), member_of(boss, "bob")
    new_node = Identity.generate()  # the same member key on a new machine
    recovering = MeshState(alice.member, new_node.public_key)
    mine, theirs = shake(new_node, MeshGate(recovering), bob.identity, bob.gate)
    assert mine.remote.standing == theirs.remote.standing == "member"
    assert recovering.mesh == boss.state.mesh and recovering.changed
    assert bob.state.nodes[alice.member.public_key] == [new_node.node_id]
    unknown = MeshState(Identity.generate(), new_node.public_key)
    with pytest.raises(HandshakeError, match="not on the roll"):
        shake(new_node, MeshGate(unknown), bob.identity, bob.gate)


@given(st.binary(max_size=3000))
def test_any_bytes_as_a_credential_raise_only_handshake_errors(credential: bytes) -> None:
    boss = founder()
    with pytest.raises(HandshakeError):
        boss.gate.admit(Identity.generate().public_key, credential, b"transcript")


@given(
    st.dictionaries(
        st.sampled_from(["mesh", "member", "bind", "cert", "invite", "proof", "x"]),
        st.one_of(st.binary(max_size=80), st.integers(), st.text(max_size=8), st.none()),
    )
)
def test_any_credential_map_raises_only_handshake_errors(shown: dict[str, object]) -> None:
    boss = founder()
    with pytest.raises(HandshakeError):
        boss.gate.admit(Identity.generate().public_key, cbor2.dumps(shown), b"transcript")


def test_a_binding_is_for_one_node_key() -> None:
    member, node = Identity.generate(), Identity.generate()
    from p2pbackup.mesh.certs import binding_holds

    assert binding_holds(member.public_key, node.public_key, bind(member, node.public_key))
    assert not binding_holds(
        member.public_key, Identity.generate().public_key, bind(member, node.public_key)
    )
