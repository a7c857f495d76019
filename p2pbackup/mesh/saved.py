"""The mesh file of a home: what a member keeps of its mesh between runs.

One CBOR map: open or private; for a private mesh the mesh id (absent while
a recovered peer has not met its mesh), its own certificate, the roll, the
founder's invite book, the node ids seen per member, and member addresses
to start from. The home writes it atomically (temp file, fsync, rename).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cbor2

from p2pbackup.crypto.identity import Identity
from p2pbackup.mesh.certs import Certificate, MembershipError
from p2pbackup.mesh.gate import MeshState
from p2pbackup.mesh.invites import InviteBook
from p2pbackup.mesh.roll import Roll


@dataclass
class SavedMesh:
    """A home's mesh file, decoded."""

    open: bool = False
    state: MeshState | None = None  # None for an open mesh
    bootstrap: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        if self.open or self.state is None:
            return cbor2.dumps({"open": True})
        state = self.state
        value: dict[str, Any] = {
            "open": False,
            "mesh": state.mesh,
            "cert": state.certificate,
            "roll": state.roll.items() if state.roll is not None else [],
            "nodes": {member: list(ids) for member, ids in sorted(state.nodes.items())},
            "bootstrap": self.bootstrap,
        }
        if state.book is not None:
            value["invites"] = state.book.to_wire()
        return cbor2.dumps(value)

    @classmethod
    def from_bytes(cls, data: bytes, member: Identity, node_public_key: bytes) -> SavedMesh:
        """The mesh file as this home wrote it; `MembershipError` if it is damaged."""
        try:
            value = cbor2.loads(data)
            if value.get("open"):
                return cls(open=True)
            mesh = value.get("mesh")
            state = MeshState(member, node_public_key, mesh)
            if mesh is not None:
                state.roll = Roll(mesh)
                state.roll.merge(value.get("roll") or [])
            state.certificate = value.get("cert")
            if "invites" in value:
                state.book = InviteBook.from_wire(value["invites"])
            state.nodes = {bytes(m): [bytes(n) for n in ids] for m, ids in value["nodes"].items()}
            return cls(False, state, [str(a) for a in value.get("bootstrap") or []])
        except Exception as exc:  # our own file, damaged: say so in one line
            raise MembershipError(f"the mesh file is damaged ({type(exc).__name__})") from None


def founded(member: Identity, node_public_key: bytes, name: str, now: int) -> SavedMesh:
    """A new mesh whose founder is `member`, with its self-signed certificate."""
    mesh = member.public_key
    roll = Roll(mesh)
    certificate = Certificate.issue(member, mesh, name, now).to_bytes()
    roll.add(certificate)
    state = MeshState(member, node_public_key, mesh, roll, book=InviteBook())
    state.certificate = certificate
    return SavedMesh(False, state)
