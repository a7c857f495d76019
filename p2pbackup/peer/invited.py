"""Joining a mesh by invite: the newcomer's side, before its home exists.

The newcomer dials the inviter addresses the code names, shows the invite in
the handshake (`InviteGate`), and makes its one request: its member key,
name and binding for a certificate. It stores nothing itself: the caller
makes the home only once this returned, so a failed join leaves no half-made
home behind.
"""

from __future__ import annotations

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import PeerUnreachable, RemoteError
from p2pbackup.mesh.certs import MembershipError, bind, parse_certificate
from p2pbackup.mesh.gate import InviteGate, MeshState
from p2pbackup.mesh.invites import Invite
from p2pbackup.mesh.messages import InviteRedeemed, RedeemInvite
from p2pbackup.mesh.roll import Roll
from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.net.contact import parse_address
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.wire.messages import Message

REDEEM_TIMEOUT = 15.0


async def redeem(
    identity: Identity, member: Identity, invite: Invite, name: str, timeout: float = REDEEM_TIMEOUT
) -> SavedMesh:
    """This newcomer's mesh, as the inviter gave it; `MembershipError` says why not."""
    gate = InviteGate(invite)
    transport = TcpTransport(identity, ("127.0.0.1", 0), gate=gate)
    request = RedeemInvite(member.public_key, name, bind(member, identity.public_key))
    problems: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.serve, _serve_nothing)
        try:
            for text in invite.addresses:
                try:
                    reply = await transport.request(parse_address(text), request, timeout)
                except RemoteError as exc:
                    raise MembershipError(f"the inviter refused: {exc}") from None
                except (PeerUnreachable, ValueError) as exc:
                    problems.append(_why(text, str(exc)))
                    continue
                if not isinstance(reply.message, InviteRedeemed):
                    raise MembershipError(f"the inviter answered {reply.message.TYPE}")
                return _joined(identity, member, invite, reply.message)
        finally:
            nursery.cancel_scope.cancel()
    raise MembershipError("could not join: " + "; ".join(problems or ["the code names no address"]))


def _why(address: str, problem: str) -> str:
    if "closed the connection" in problem:
        # It finished its handshake with us and hung up: it refused the invite we showed.
        return f"{address} refused the invite (unknown here: forged, or from another mesh)"
    return f"the inviter is unreachable ({problem})"


async def _serve_nothing(remote: Remote, message: Message) -> Message:
    raise PeerUnreachable("a joining peer serves nothing")


def _joined(identity: Identity, member: Identity, invite: Invite, got: InviteRedeemed) -> SavedMesh:
    certificate = parse_certificate(got.certificate)
    if certificate.mesh != invite.mesh or certificate.member != member.public_key:
        raise MembershipError("the inviter sent a certificate for someone else")
    roll = Roll(invite.mesh)
    roll.add(got.certificate)
    roll.merge(got.items)
    state = MeshState(member, identity.public_key, invite.mesh, roll, got.certificate)
    return SavedMesh(False, state, list(got.bootstrap))
