"""The handshake gates of a private mesh, sans-IO: what a peer shows, whom it admits.

A member shows its member key, the member key's signature over its node key
(the binding) and its certificate. A newcomer shows the id of its invite and
a keyed hash of the handshake transcript under the invite's key. A peer
recovered from its phrase knows its member key but not yet its mesh: it
shows the binding alone, is admitted by members whose roll holds its member
key, and takes its mesh from the first member it meets (the address its
user gave it). Every refusal is a `HandshakeError` with a one-line reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cbor2

from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity
from p2pbackup.crypto.identity import node_id_from_public_key as node_id_of
from p2pbackup.errors import HandshakeError, WireError
from p2pbackup.mesh.certs import (
    MAX_ITEM,
    Certificate,
    MembershipError,
    bind,
    binding_holds,
    parse_certificate,
)
from p2pbackup.mesh.invites import INVITE_ID_BYTES, PROOF_BYTES, Invite, InviteBook
from p2pbackup.mesh.roll import Roll
from p2pbackup.wire.schema import bytes_field, load_map, map_of

MEMBER = "member"
JOINER = "joiner"
OPEN = "open"
# Standings whose contact may enter a routing table and whose requests are served.
ROUTABLE = frozenset({MEMBER, OPEN})
MAX_JOINERS = 256
MAX_BARRED = 4096
# Node ids remembered per member key (for `members` and `expel NODE_ID`).
MAX_NODES_PER_MEMBER = 8

_KEY = bytes_field(exact=PUBLIC_KEY_BYTES)
_MEMBER_CREDENTIAL = map_of(
    {
        "mesh": _KEY,
        "member": _KEY,
        "bind": bytes_field(exact=SIGNATURE_BYTES),
        "cert": bytes_field(max_len=MAX_ITEM),
    },
    optional_keys=frozenset({"mesh", "cert"}),
)
_INVITE_CREDENTIAL = map_of(
    {
        "mesh": _KEY,
        "invite": bytes_field(exact=INVITE_ID_BYTES),
        "proof": bytes_field(exact=PROOF_BYTES),
    }
)


@dataclass
class MeshState:
    """A member's view of its mesh, shared by its gate and the peer that keeps it.

    `mesh` is None while a recovered peer has not met a member yet. `book` is
    the founder's alone. `changed` tells the peer there is something to store."""

    member: Identity
    node_public_key: bytes
    mesh: bytes | None = None
    roll: Roll | None = None
    certificate: bytes | None = None
    book: InviteBook | None = None
    # Member key -> the node ids seen proving they act for it.
    nodes: dict[bytes, list[bytes]] = field(default_factory=dict)
    # Node id -> the invite a joiner proved it holds, until it redeems it.
    joiners: dict[bytes, bytes] = field(default_factory=dict)
    # Node ids of expelled members met since the start, and whom to tell of each.
    barred: set[bytes] = field(default_factory=set)
    on_barred: Callable[[bytes], None] | None = None
    changed: bool = False

    @property
    def founder(self) -> bool:
        return self.mesh is not None and self.mesh == self.member.public_key

    def adopt(self, mesh: bytes) -> None:
        """Take `mesh` as ours (a recovered peer, at the first member it meets)."""
        self.mesh, self.roll, self.changed = mesh, Roll(mesh), True

    def saw(self, member: bytes, node_id: bytes) -> None:
        known = self.nodes.setdefault(member, [])
        if node_id not in known:
            known.append(node_id)
            del known[:-MAX_NODES_PER_MEMBER]
            self.changed = True

    def bar(self, node_id: bytes) -> None:
        """A node of an expelled member: refused, and out of every table, from now on."""
        if node_id not in self.barred and len(self.barred) < MAX_BARRED:
            self.barred.add(node_id)
        if self.on_barred is not None:
            self.on_barred(node_id)

    def take_certificate(self, data: bytes) -> None:
        """Keep our own certificate (found on the roll, or issued at a redeem)."""
        self.certificate, self.changed = data, True


class MeshGate:
    """The gate of a member (or of a recovered peer that is finding its mesh)."""

    def __init__(self, state: MeshState) -> None:
        self.state = state

    def credential(self, transcript: bytes) -> bytes | None:
        state = self.state
        shown: dict[str, Any] = {
            "member": state.member.public_key,
            "bind": bind(state.member, state.node_public_key),
        }
        if state.mesh is not None:
            shown["mesh"] = state.mesh
        if state.certificate is not None:
            shown["cert"] = state.certificate
        return cbor2.dumps(shown)

    def admit(self, public_key: bytes, credential: bytes | None, transcript: bytes) -> str:
        if credential is None:
            raise HandshakeError("not a member of this mesh: it showed no membership")
        try:
            raw = load_map(credential, "membership credential")
            if "invite" in raw:
                return self._joiner(public_key, _INVITE_CREDENTIAL(raw), transcript)
            return self._member(public_key, _MEMBER_CREDENTIAL(raw))
        except WireError as exc:
            raise HandshakeError(f"a malformed membership credential: {exc}") from None

    def _joiner(self, public_key: bytes, shown: dict[str, Any], transcript: bytes) -> str:
        state = self.state
        if state.book is None or state.mesh is None:
            raise HandshakeError("an invite shown to a member that takes none (only the founder)")
        if shown["mesh"] != state.mesh:
            raise HandshakeError("an invite to another mesh")
        if not state.book.proves(shown["invite"], shown["proof"], transcript):
            raise HandshakeError("an unknown invite (forged, or not issued by this mesh)")
        if len(state.joiners) >= MAX_JOINERS:  # a joiner that never redeems is forgotten
            del state.joiners[next(iter(state.joiners))]
        state.joiners[node_id_of(public_key)] = shown["invite"]
        return JOINER

    def _member(self, public_key: bytes, shown: dict[str, Any]) -> str:
        state = self.state
        member: bytes = shown["member"]
        if not binding_holds(member, public_key, shown["bind"]):
            raise HandshakeError("its member key did not sign its node key")
        claimed = shown.get("mesh")
        if state.mesh is not None and claimed is not None and claimed != state.mesh:
            raise HandshakeError("a member of another mesh")
        certificate = _certificate(shown.get("cert"))
        if certificate is not None and certificate.member != member:
            raise HandshakeError("its certificate names another member")
        if state.mesh is None:
            if certificate is None:
                raise HandshakeError("no certificate, and this peer has not met its mesh yet")
            state.adopt(certificate.mesh)
        assert state.roll is not None
        if certificate is not None and certificate.mesh != state.mesh:
            raise HandshakeError("a member of another mesh")
        if state.roll.expelled(member):
            state.bar(node_id_of(public_key))
            raise HandshakeError("expelled from this mesh")
        if certificate is None and not state.roll.is_member(member):
            raise HandshakeError("not a member of this mesh: no certificate, and not on the roll")
        if certificate is not None:
            with contextlib.suppress(MembershipError):  # a full roll admits all the same
                state.changed |= state.roll.add(shown["cert"]) is not None
        state.saw(member, node_id_of(public_key))
        return MEMBER


def _certificate(data: bytes | None) -> Certificate | None:
    if data is None:
        return None
    try:
        return parse_certificate(data)
    except MembershipError:
        raise HandshakeError("a certificate not signed by this mesh's founder") from None


class InviteGate:
    """The gate of a newcomer redeeming an invite: it shows the invite and admits
    only a member of the invite's mesh."""

    def __init__(self, invite: Invite) -> None:
        self.invite = invite
        self.inviter: bytes | None = None  # the member key that answered

    def credential(self, transcript: bytes) -> bytes | None:
        invite = self.invite
        return cbor2.dumps(
            {"mesh": invite.mesh, "invite": invite.invite_id, "proof": invite.proof(transcript)}
        )

    def admit(self, public_key: bytes, credential: bytes | None, transcript: bytes) -> str:
        if credential is None:
            raise HandshakeError("the inviter showed no membership")
        try:
            shown = _MEMBER_CREDENTIAL(load_map(credential, "membership credential"))
        except WireError as exc:
            raise HandshakeError(f"a malformed membership credential: {exc}") from None
        certificate = _certificate(shown.get("cert"))
        if certificate is None or certificate.mesh != self.invite.mesh:
            raise HandshakeError("the inviter is not a member of the invite's mesh")
        if certificate.member != shown["member"] or not binding_holds(
            shown["member"], public_key, shown["bind"]
        ):
            raise HandshakeError("the inviter's certificate is not its own")
        self.inviter = shown["member"]
        return MEMBER


class OpenMeshGate:
    """An open mesh: everyone without a membership may talk. A peer showing one
    belongs to a private mesh and is refused, as it refuses us."""

    def credential(self, transcript: bytes) -> bytes | None:
        return None

    def admit(self, public_key: bytes, credential: bytes | None, transcript: bytes) -> str:
        if credential is not None:
            raise HandshakeError("a member of a private mesh; this mesh is open")
        return OPEN
