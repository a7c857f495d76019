"""A member's mesh at run time: roll sync, revocations, invites, expulsion.

The gate (`p2pbackup.mesh.gate`) decides who may talk in each handshake; this
keeps what it decides on up to date and on disk. A member asks one random
peer for its roll every `sync_interval` (and a few at once after joining),
and pulls what it lacks. A new revocation is pushed at once to every peer in
the routing table, each of which pushes it on once: an item is pushed only
by a peer to which it was new, so the flood ends by itself. Only the founder
invites and expels (decision 0037).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from p2pbackup.errors import P2PBackupError
from p2pbackup.mesh.certs import Certificate, MembershipError, Revocation, binding_holds
from p2pbackup.mesh.invites import Invite, InviteBook, new_secret
from p2pbackup.mesh.messages import (
    MAX_BOOTSTRAP,
    InviteRedeemed,
    RedeemInvite,
    RollAsk,
    RollItems,
    RollPush,
)
from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.net.contact import Contact, format_address
from p2pbackup.net.transport import Remote
from p2pbackup.peer.home import Home
from p2pbackup.peer.peer import Peer
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.mesh")

SYNC_INTERVAL = 30.0
FIRST_SYNCS = 3
PUSH_TIMEOUT = 5.0
MAX_USES = 1000


@dataclass(frozen=True)
class InviteMade:
    code: str
    mesh: str
    expires: int
    uses: int
    addresses: list[str]


@dataclass(frozen=True)
class MemberInfo:
    member: str
    name: str
    since: int
    nodes: list[str]
    expelled: bool
    founder: bool


@dataclass(frozen=True)
class MemberList:
    mesh: str
    members: list[MemberInfo]


@dataclass(frozen=True)
class Expelled:
    member: str
    name: str
    nodes: list[str]
    told: int  # peers the revocation was pushed to at once


class Membership:
    """The mesh side of one running member."""

    def __init__(
        self,
        home: Home,
        saved: SavedMesh,
        peer: Peer,
        *,
        addresses: Callable[[], list[str]],
        disconnect: Callable[[bytes], None],
        rng: random.Random,
        sync_interval: float = SYNC_INTERVAL,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        assert saved.state is not None
        self.home, self.saved, self.state, self.peer = home, saved, saved.state, peer
        self.addresses, self.disconnect = addresses, disconnect
        self.rng, self.sync_interval, self.wall_clock = rng, sync_interval, wall_clock
        self.state.saw(self.state.member.public_key, peer.node_id)
        self.state.on_barred = self._drop
        peer.dht.barred = self.state.barred
        for kind in (RollAsk, RollPush, RedeemInvite):
            peer.add_handler(kind, self.handle)
        self._nursery: trio.Nursery | None = None
        peer.add_task(self.keep_in_sync)

    # ---- requests from members ----------------------------------------

    async def handle(self, remote: Remote, message: Message) -> Message:
        if isinstance(message, RedeemInvite):
            return await self._redeem(remote, message)
        roll = self.state.roll
        if roll is None:
            raise P2PBackupError("this peer has not met its mesh yet")
        if isinstance(message, RollAsk):
            same = message.digest == roll.digest()
            return RollItems(() if same else tuple(roll.items()))
        if isinstance(message, RollPush):
            await self._learn(message.items, source=remote.node_id)
            return RollItems(())
        raise P2PBackupError(f"not a mesh request: {message.TYPE}")

    async def _redeem(self, remote: Remote, request: RedeemInvite) -> InviteRedeemed:
        state = self.state
        invite = state.joiners.pop(remote.node_id, None)
        if invite is None or state.book is None or state.roll is None:
            raise MembershipError("no invite was shown on this connection")
        if not binding_holds(request.member, remote.public_key, request.binding):
            raise MembershipError("the member key did not sign the joining node's key")
        if state.roll.expelled(request.member):
            raise MembershipError("this member was expelled from the mesh")
        now = int(self.wall_clock())
        state.book.spend(invite, now)
        founder = state.member
        certificate = Certificate.issue(founder, request.member, request.name, now).to_bytes()
        state.roll.add(certificate)
        state.saw(request.member, remote.node_id)
        # Spent and recorded on disk before the newcomer hears of it: a crash now
        # leaves the invite used, never used twice.
        await self.save()
        log.info("invite redeemed by %s (%s)", request.name, request.member.hex()[:12])
        bootstrap = [*self.addresses(), *self._known_addresses()][:MAX_BOOTSTRAP]
        return InviteRedeemed(certificate, tuple(state.roll.items()), tuple(bootstrap))

    def _known_addresses(self) -> list[str]:
        contacts = list(self.peer.dht.table)
        self.rng.shuffle(contacts)
        return [format_address(c.address) for c in contacts]

    # ---- keeping the roll ---------------------------------------------

    async def keep_in_sync(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery  # revocations are pushed on from here
                task_status.started()
                await self.peer.joined.wait()
                await self.sync(FIRST_SYNCS)
                while True:
                    await trio.sleep(self.sync_interval * (0.5 + self.rng.random()))
                    await self.sync(1)
        finally:
            self._nursery = None  # closed: a late revocation is pushed by its handler

    async def sync(self, count: int) -> None:
        """Ask `count` random peers for their roll and keep what we lack."""
        contacts = list(self.peer.dht.table)
        chosen = self.rng.sample(contacts, min(count, len(contacts)))
        for contact in chosen:
            await self._pull(contact)
        await self._settle()

    async def _pull(self, contact: Contact) -> None:
        roll = self.state.roll
        digest = roll.digest() if roll is not None else bytes(32)
        reply = await self.peer.dht.call(contact, RollAsk(digest))
        if isinstance(reply, RollItems) and reply.items:
            await self._learn(reply.items, source=contact.node_id)

    async def _learn(self, items: tuple[bytes, ...], source: bytes | None) -> None:
        """Merge what verifies; act on new revocations and push them on once."""
        roll = self.state.roll
        if roll is None:
            return
        added = roll.merge(items)
        if not added:
            return
        self.state.changed = True
        revoked = [item for item in added if isinstance(item, Revocation)]
        for revocation in revoked:
            self._refuse(revocation.member)
        await self._settle()
        if revoked:
            # In the background: whoever told us must not wait for the whole flood.
            pushed = tuple(r.to_bytes() for r in revoked)
            if self._nursery is not None:
                self._nursery.start_soon(self._push, pushed, source)
            else:
                await self._push(pushed, source)

    async def _settle(self) -> None:
        """Find our own certificate on the roll (a recovered member), then store
        whatever changed."""
        state = self.state
        if state.founder and state.book is None:  # a recovered founder invites again
            state.book, state.changed = InviteBook(), True
        if state.certificate is None and state.roll is not None:
            own = state.roll.certificates.get(state.member.public_key)
            if own is not None:
                state.take_certificate(own.to_bytes())
                log.info("found this member's certificate on the roll of mesh %s", _short(own.mesh))
        if state.changed:
            await self.save()

    def _refuse(self, member: bytes) -> None:
        """An expelled member: drop its connections and contacts; the gate refuses it now."""
        nodes = self.state.nodes.get(member, [])
        for node_id in nodes:
            self.state.bar(node_id)
        log.warning(
            "member %s was expelled from this mesh; refusing its nodes %s",
            _short(member),
            ", ".join(_short(n) for n in nodes) or "(none seen)",
        )

    def _drop(self, node_id: bytes) -> None:
        self.disconnect(node_id)
        self.peer.dht.table.remove(node_id)

    async def _push(self, items: tuple[bytes, ...], source: bytes | None) -> int:
        targets = [c for c in self.peer.dht.table if c.node_id != source]

        async def push(contact: Contact) -> None:
            with trio.move_on_after(PUSH_TIMEOUT):
                await self.peer.dht.call(contact, RollPush(items))

        async with trio.open_nursery() as nursery:
            for contact in targets:
                nursery.start_soon(push, contact)
        return len(targets)

    async def save(self) -> None:
        self.state.changed = False
        data = self.saved.to_bytes()
        await trio.to_thread.run_sync(self.home.write_mesh, data)

    def save_now(self) -> None:
        if self.state.changed:
            self.state.changed = False
            self.home.write_mesh(self.saved.to_bytes())

    # ---- the founder's operations -------------------------------------

    def _founder_only(self, what: str) -> None:
        if not self.state.founder or self.state.book is None:
            raise MembershipError(f"only the mesh's founder may {what}; this peer is a member")

    async def invite(self, expires_in: float, uses: int) -> InviteMade:
        self._founder_only("invite")
        if not 1 <= uses <= MAX_USES:
            raise MembershipError(f"--uses takes 1 to {MAX_USES}")
        assert self.state.mesh is not None and self.state.book is not None
        addresses = self.addresses()
        if not addresses:
            raise MembershipError("this peer knows no address others could reach it at")
        now = self.wall_clock()
        invite = Invite(self.state.mesh, tuple(addresses[:4]), new_secret(), int(now + expires_in))
        self.state.book.prune(now)
        self.state.book.add(invite, uses)
        await self.save()  # before the code exists anywhere: a known code is honoured
        code = invite.encode(self.state.member)
        return InviteMade(code, self.state.mesh.hex(), invite.expires, uses, list(invite.addresses))

    async def expel(self, target: str) -> Expelled:
        self._founder_only("expel")
        state = self.state
        assert state.roll is not None and state.mesh is not None
        member = self._member_named(target)
        if member == state.mesh:
            raise MembershipError("the founder cannot expel itself")
        certificate = state.roll.certificates.get(member)
        revocation = Revocation.issue(state.member, member, int(self.wall_clock()))
        state.roll.add(revocation.to_bytes())
        await self.save()
        nodes = [n.hex() for n in state.nodes.get(member, [])]
        self._refuse(member)
        told = await self._push((revocation.to_bytes(),), None)
        return Expelled(member.hex(), certificate.name if certificate else "", nodes, told)

    def _member_named(self, target: str) -> bytes:
        """The member a hex prefix names: of its member key or of a node it acts by."""
        wanted = target.strip().lower()
        if len(wanted) < 4 or any(c not in "0123456789abcdef" for c in wanted):
            raise MembershipError(f"{target!r} is not a node id or member id (hex, 4+ digits)")
        roll = self.state.roll
        assert roll is not None
        found = {m for m in roll.certificates if m.hex().startswith(wanted)}
        found |= {
            m
            for m, nodes in self.state.nodes.items()
            if any(n.hex().startswith(wanted) for n in nodes)
        }
        if not found:
            raise MembershipError(f"no member or node {target!r} on this mesh's roll")
        if len(found) > 1:
            raise MembershipError(f"{target!r} names {len(found)} members; give more digits")
        return found.pop()

    def members(self) -> MemberList:
        state = self.state
        roll = state.roll
        if roll is None or state.mesh is None:
            raise MembershipError("this peer has not met its mesh yet")
        listed = [
            MemberInfo(
                member.hex(),
                cert.name,
                cert.issued,
                [n.hex() for n in state.nodes.get(member, [])],
                roll.expelled(member),
                member == state.mesh,
            )
            for member, cert in roll.certificates.items()
        ]
        listed.sort(key=lambda m: (not m.founder, m.since, m.member))
        return MemberList(state.mesh.hex(), listed)


def _short(key: bytes) -> str:
    return key.hex()[:12]
