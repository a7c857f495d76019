"""A founder, members and handshakes between them, for the mesh's unit tests."""

from __future__ import annotations

from dataclasses import dataclass

from p2pbackup.crypto.identity import Identity
from p2pbackup.mesh.certs import Certificate, bind
from p2pbackup.mesh.gate import MeshGate, MeshState
from p2pbackup.mesh.roll import Roll
from p2pbackup.mesh.saved import founded
from p2pbackup.net.handshake import Established, Gate, Handshake

NOW = 1_800_000_000


@dataclass
class Node:
    """One peer: its node key, its member key and its gate's state."""

    identity: Identity
    member: Identity
    state: MeshState

    @property
    def gate(self) -> MeshGate:
        return MeshGate(self.state)


def founder() -> Node:
    identity, member = Identity.generate(), Identity.generate()
    saved = founded(member, identity.public_key, "founder", NOW)
    assert saved.state is not None
    return Node(identity, member, saved.state)


def member_of(boss: Node, name: str = "friend") -> Node:
    """A member whose certificate the founder issued, holding the founder's roll."""
    identity, member = Identity.generate(), Identity.generate()
    assert boss.state.roll is not None and boss.state.mesh is not None
    certificate = Certificate.issue(boss.member, member.public_key, name, NOW).to_bytes()
    boss.state.roll.add(certificate)
    roll = Roll(boss.state.mesh)
    roll.merge(boss.state.roll.items())
    state = MeshState(member, identity.public_key, boss.state.mesh, roll, certificate)
    return Node(identity, member, state)


def shake(a: Identity, a_gate: Gate, b: Identity, b_gate: Gate) -> tuple[Established, Established]:
    """A full handshake, `a` dialling `b`; raises the first side's refusal."""
    initiator = Handshake(a, initiator=True, listen=("127.0.0.1", 4000), gate=a_gate)
    responder = Handshake(b, initiator=False, listen=("127.0.0.1", 5000), gate=b_gate)
    proof_i = initiator.receive_hello(responder.hello())
    proof_r = responder.receive_hello(initiator.hello())
    theirs = responder.receive_auth(proof_i)
    return initiator.receive_auth(proof_r), theirs


def binding_of(node: Node) -> bytes:
    return bind(node.member, node.identity.public_key)
