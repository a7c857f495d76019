"""A private mesh in a serving peer: its gate, its start addresses, its control operations.

`invite`, `members` and `expel` answer on the control socket; on an open mesh
each says, in one line, that an open mesh has no members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pbackup.crypto.identity import Identity
from p2pbackup.mesh.certs import MembershipError
from p2pbackup.mesh.gate import MeshGate, OpenMeshGate
from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.net.contact import format_address, parse_address
from p2pbackup.net.handshake import Gate
from p2pbackup.peer.contracts import Args, ContractError, text, whole
from p2pbackup.peer.control import Operation, Progress, endpoint
from p2pbackup.peer.home import Home
from p2pbackup.peer.membership import Expelled, InviteMade, MemberList, Membership
from p2pbackup.peer.requests import NoArgs


@dataclass(frozen=True)
class InviteRequest:
    expires: float  # seconds from now
    uses: int = 1

    @classmethod
    def from_args(cls, args: Args) -> InviteRequest:
        expires = args.get("expires")
        if not isinstance(expires, int | float) or isinstance(expires, bool) or expires <= 0:
            raise ContractError("expires must be a number of seconds above 0")
        return cls(float(expires), whole(args, "uses") or 1)

    def to_args(self) -> dict[str, Any]:
        return {"expires": self.expires, "uses": self.uses}


@dataclass(frozen=True)
class ExpelRequest:
    target: str

    @classmethod
    def from_args(cls, args: Args) -> ExpelRequest:
        return cls(text(args, "target"))

    def to_args(self) -> dict[str, Any]:
        return {"target": self.target}


def load_gate(home: Home, identity: Identity) -> tuple[Gate, SavedMesh | None]:
    """The handshake gate of a home, and its private mesh (None: an open mesh)."""
    data = home.read_mesh()
    if data is None:
        return OpenMeshGate(), None  # a home made before meshes had members
    saved = SavedMesh.from_bytes(data, home.member_identity(), identity.public_key)
    if saved.open or saved.state is None:
        return OpenMeshGate(), None
    return MeshGate(saved.state), saved


def starting_addresses(
    home: Home, saved: SavedMesh | None, given: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, int], ...]:
    """Where `serve` starts from: the addresses given, kept in the mesh file when it has
    none (a home recovered from its phrase has none), else those the file keeps. A
    recovered peer restarted without `--bootstrap` knew nobody to start from."""
    if not given:
        return bootstrap_addresses(saved)
    if saved is not None and not saved.bootstrap:
        saved.bootstrap = [format_address(address) for address in given]
        home.write_mesh(saved.to_bytes())
    return given


def bootstrap_addresses(saved: SavedMesh | None) -> tuple[tuple[str, int], ...]:
    """The member addresses a join gave, those that still read as HOST:PORT."""
    found = []
    for address in saved.bootstrap if saved is not None else []:
        try:
            found.append(parse_address(address))
        except ValueError:
            continue
    return tuple(found)


def mesh_operations(membership: Membership | None) -> dict[str, Operation]:
    """The control operations `invite`, `members` and `expel`."""

    async def invite(request: InviteRequest, progress: Progress) -> InviteMade:
        return await _private(membership).invite(request.expires, request.uses)

    async def members(request: NoArgs, progress: Progress) -> MemberList:
        return _private(membership).members()

    async def expel(request: ExpelRequest, progress: Progress) -> Expelled:
        return await _private(membership).expel(request.target)

    return {
        "invite": endpoint(InviteRequest.from_args, invite),
        "members": endpoint(NoArgs.from_args, members),
        "expel": endpoint(ExpelRequest.from_args, expel),
    }


def _private(membership: Membership | None) -> Membership:
    if membership is None:
        raise MembershipError("this peer's mesh is open: it has no members, invites or roll")
    return membership
