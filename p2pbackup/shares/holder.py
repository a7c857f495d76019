"""A storage peer's side of shares: check what arrives, keep it, hand it back.

A share is accepted only with a descriptor signed by the pack's owner and
only if the bytes match the descriptor's Merkle root for that index, so a
peer never stores (or later serves) bytes nobody vouched for. A peer holds
at most one share of an owner's pack: two on one disk would make one failure
cost two. Shares are kept by owner and pack id, and every request about a held
share names the owner, so a stranger's share under someone else's pack id
neither blocks nor answers for the real one.
A lease is kept no longer than the holder's own maximum, whatever was signed.
A share is handed back only to its owner and the pack's other holders
(`fetch_rules`), so nobody else can collect a pack's shares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

import trio

from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.descriptor import ShareDescriptor, parsed_descriptor, same_share_set
from p2pbackup.codec.erasure import (
    BLOCK_SIZE,
    leaves_root,
    leaves_root_and_proof,
    share_leaves,
)
from p2pbackup.errors import P2PBackupError, WireError
from p2pbackup.net.transport import Remote
from p2pbackup.shares.audit_log import AuditLog
from p2pbackup.shares.fetch_rules import SiblingCheck, fetch_is_owners
from p2pbackup.shares.lease_rules import (
    MAX_LEASE_SECONDS,
    capped_lease,
    newer_lease,
    release_is_genuine,
)
from p2pbackup.shares.messages import (
    SHARE_REQUESTS,
    GetShare,
    NoShare,
    PutShare,
    ShareData,
    ShareStored,
)
from p2pbackup.shares.upkeep_messages import (
    MAINTENANCE_REQUESTS,
    Audit,
    AuditProof,
    LeaseRenewed,
    QueryShare,
    ReleaseShare,
    RenewLease,
    ShareHeld,
    ShareReleased,
)
from p2pbackup.store import ShareStore, StoredShare
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.shares")
# Every request a storage peer answers from its share store.
HOLDER_REQUESTS = SHARE_REQUESTS + MAINTENANCE_REQUESTS


class ShareRefused(P2PBackupError):
    """This peer will not hold the share; the reason goes back to the owner."""


class CheckedShare(NamedTuple):
    """A share found sound: its descriptor, the leaf hashes its check computed (kept
    by the store, so an audit that follows a put needs no second hash), and the path
    of the block the put asked proven (None when it asked none or the share has no
    such block)."""

    descriptor: ShareDescriptor
    leaves: list[bytes]
    path: list[bytes] | None = None


def check_share(
    pack_id: bytes,
    index: int,
    descriptor_bytes: bytes,
    data: bytes | memoryview,
    now: float,
    prove: int | None = None,
) -> CheckedShare:
    """The descriptor and leaves, once they and the share prove sound, with the path of
    block `prove` when it is one of the share's; raises `ShareRefused`."""
    try:
        descriptor = parsed_descriptor(descriptor_bytes)
    except WireError as exc:
        raise ShareRefused(f"malformed descriptor: {exc}") from None
    if not descriptor.verify():
        raise ShareRefused("the descriptor's signature does not verify")
    if descriptor.pack_id != pack_id:
        raise ShareRefused("the descriptor is for another pack")
    if not 0 <= index < descriptor.n:
        raise ShareRefused(f"share index {index} outside 0..{descriptor.n - 1}")
    if descriptor.lease_expiry <= now:
        raise ShareRefused("the share's lease has already expired")
    if len(data) != descriptor.share_size:
        raise ShareRefused(f"share {index} does not match its descriptor")
    leaves = share_leaves(data, descriptor.version)
    path = None
    if prove is not None and 0 <= prove < len(leaves):
        root, path = leaves_root_and_proof(leaves, prove, descriptor.version)
    else:
        root = leaves_root(leaves, descriptor.version)
    if root != descriptor.roots[index]:
        raise ShareRefused(f"share {index} does not match its descriptor")
    return CheckedShare(descriptor, leaves, path)


class ShareHolder:
    """Answers share requests (put, get, query, audit) from the peer's share store."""

    def __init__(
        self,
        store: ShareStore,
        *,
        run_sync: RunSync = to_thread,
        now: Callable[[], float] = time.time,
        own_owner: bytes | None = None,
        audit_log: AuditLog | None = None,
        max_lease: int = MAX_LEASE_SECONDS,
        siblings: SiblingCheck | None = None,
    ) -> None:
        # The owner this peer backs up for: its shares must live elsewhere, or
        # losing this machine would lose a share together with the originals.
        self.own_owner = own_owner
        self.store = store
        self.run_sync = run_sync
        self.now = now
        # Shared with this peer's maintainer: an audit by the keeper is its heartbeat.
        self.audit_log = audit_log
        self.max_lease = max_lease
        # Without it only the owner is served: a holder cannot be challenged.
        self.siblings = siblings

    async def handle(self, remote: Remote, message: Message) -> Message:
        if isinstance(message, PutShare):
            return await self._put(message)
        if isinstance(message, GetShare):
            return await self._get(remote, message)
        if isinstance(message, QueryShare):
            return await self._query(remote, message)
        if isinstance(message, Audit):
            return await self._audit(remote, message)
        if isinstance(message, RenewLease):
            return await self._renew(message)
        if isinstance(message, ReleaseShare):
            return await self._release(message)
        raise P2PBackupError(f"{message.TYPE} is not a share request")

    async def _put(self, message: PutShare) -> Message:
        # One trip to a worker thread, not three: a backup's shares arrive at every
        # peer at once, and each trip waits for the interpreter lock again.
        return await self.run_sync(self._accept, message, self.now())

    def _accept(self, message: PutShare, now: float) -> ShareStored:
        """Check and store the share; prove the block the put asked for only once the
        store says it is durable, from the bytes just written and the path the check
        computed (decisions 0057, 0070)."""
        checked = check_share(
            message.pack_id,
            message.index,
            message.descriptor,
            message.data,
            now,
            message.prove_block,
        )
        self._store(message, checked, now)
        if message.prove_block is None or checked.path is None:
            # None asked, or no such block: the owner counts the latter as a failed audit.
            return ShareStored()
        start = message.prove_block * BLOCK_SIZE
        return ShareStored(bytes(message.data[start : start + BLOCK_SIZE]), tuple(checked.path))

    def _store(self, message: PutShare, checked: CheckedShare, now: float) -> None:
        """Store the share, which `checked` found sound."""
        descriptor = checked.descriptor
        if descriptor.owner == self.own_owner:
            raise ShareRefused("this peer belongs to the pack's owner and holds none of its shares")
        held = self.store.indices(message.pack_id, descriptor.owner)
        if held and self._replaces(message.pack_id, held, descriptor):
            for index in held:
                self.store.delete(message.pack_id, index, descriptor.owner)
            held = []
        others = [i for i in held if i != message.index]
        if others:
            raise ShareRefused(f"already holds share {others[0]} of this pack")
        self.store.put(
            message.pack_id,
            message.index,
            message.data,
            message.descriptor,
            descriptor.owner,
            capped_lease(descriptor.lease_expiry, now, self.max_lease),
            int(now),
            # Checked against the signed descriptor just now: the store need not hash
            # the bytes again. A put proven in its reply needs no leaves kept for the
            # audit that would have followed it.
            root=descriptor.roots[message.index],
            leaves=checked.leaves if checked.path is None else None,
        )

    def _replaces(self, pack_id: bytes, held: list[int], offered: ShareDescriptor) -> bool:
        """Whether the offered share belongs to a set of this pack encoded again (other
        k/n) that replaces the one held: only with a later lease, so the old set's
        repairs cannot push the new set out again (decision 0034). Another share of
        the same set is refused as before, as is an older set."""
        stored = self.store.get(pack_id, held[0], offered.owner)
        if stored is None:  # it rotted and was dropped: nothing held stands in the way
            return False
        try:
            current = ShareDescriptor.from_bytes(stored.descriptor)
        except WireError:
            return True  # what we hold cannot be vouched for; the signed newcomer can
        if same_share_set(current, offered):
            return False
        if offered.lease_expiry <= current.lease_expiry:
            raise ShareRefused("holds a newer encoding of this pack")
        return True

    async def _get(self, remote: Remote, message: GetShare) -> Message:
        stored = await self.run_sync(self._held, message.pack_id, message.owner)
        if stored is None:
            return NoShare()
        if await self._may_fetch(remote, message, stored.descriptor, stored.index):
            return ShareData(stored.index, stored.descriptor, stored.data)
        log.debug(
            "refused share %s of %s to %s: neither its owner nor a holder",
            stored.index,
            message.pack_id.hex()[:12],
            remote.node_id.hex()[:12],
        )
        return NoShare()

    def _held(self, pack_id: bytes, owner: bytes) -> StoredShare | None:
        """The share of `owner`'s pack held here, unhashed (`ShareStore.serve`): whoever
        asked checks it against the signed root, and a bad one costs it one more fetch."""
        for index in self.store.indices(pack_id, owner):
            stored = self.store.serve(pack_id, index, owner)
            if stored is not None:
                return stored
        return None

    async def _may_fetch(
        self, remote: Remote, message: GetShare, descriptor_bytes: bytes, index: int
    ) -> bool:
        """The owner, or a peer that proves it holds another share of the pack."""
        descriptor = ShareDescriptor.from_bytes(descriptor_bytes)
        if await self.run_sync(fetch_is_owners, descriptor, message, remote.node_id):
            return True
        if self.siblings is None:
            return False
        return await self.siblings.holds_sibling(remote, descriptor, index)

    async def _query(self, remote: Remote, message: QueryShare) -> Message:
        owner = message.owner
        for index in await self.run_sync(self.store.indices, message.pack_id, owner):
            if message.block is not None:
                proven = await self._query_proven(remote, message, index)
                if proven is not None:
                    return proven
            stored = await self.run_sync(self.store.get, message.pack_id, index, owner)
            if stored is not None:  # the claim alone: no block asked for, or none proven
                return ShareHeld(stored.index, stored.descriptor)
        return NoShare()

    async def _query_proven(
        self, remote: Remote, message: QueryShare, index: int
    ) -> ShareHeld | None:
        """The claim with the proof the query asked for: its row and one block, as an
        audit reads them (no check of the whole share); None when it cannot be proven."""
        assert message.block is not None
        key = (message.pack_id, index, message.owner)
        lease = await self.run_sync(self.store.lease, *key)
        found = (
            None if lease is None else await self.run_sync(self.store.prove, *key, message.block)
        )
        if lease is None or found is None:
            return None
        if self.audit_log is not None:
            self.audit_log.note(message.pack_id, remote.node_id, remote.contact())
        return ShareHeld(index, lease.descriptor, found.block, tuple(found.proof))

    async def _renew(self, message: RenewLease) -> Message:
        try:  # the share renewed is the one of the owner the descriptor names
            owner = ShareDescriptor.from_bytes(message.descriptor).owner
        except WireError as exc:
            raise ShareRefused(f"malformed descriptor: {exc}") from None
        for index in await self.run_sync(self.store.indices, message.pack_id, owner):
            # The row alone: a renewal serves no bytes, and `get` and audits check them.
            stored = await self.run_sync(self.store.lease, message.pack_id, index, owner)
            if stored is None:
                continue
            held = ShareDescriptor.from_bytes(stored.descriptor)
            offered = await self.run_sync(newer_lease, held, message.descriptor)
            if offered is None:  # not later, or not the owner's: keep what we have
                return LeaseRenewed(stored.lease_expiry)
            kept = capped_lease(offered.lease_expiry, self.now(), self.max_lease)
            await self.run_sync(self.store.renew, message.pack_id, owner, kept, message.descriptor)
            return LeaseRenewed(kept)
        return NoShare()

    async def _release(self, message: ReleaseShare) -> Message:
        if not release_is_genuine(message):
            raise ShareRefused("the release is not signed by the pack's owner")
        dropped = 0
        owner = message.owner
        for index in await self.run_sync(self.store.indices, message.pack_id, owner):
            dropped += await self.run_sync(self.store.delete, message.pack_id, index, owner)
        return ShareReleased(dropped)

    async def _audit(self, remote: Remote, message: Audit) -> Message:
        # One trip to a worker thread, one read and one hash: a checked `get` and then a
        # proof hashed the share twice.
        found = await self.run_sync(
            self.store.prove, message.pack_id, message.index, message.owner, message.block
        )
        # Where the answer took two steps, the simulator's schedule had two turns here;
        # a checkpoint keeps it, so a seeded run replays as before.
        await trio.lowlevel.checkpoint()
        if found is None:
            raise P2PBackupError("no such share or block held here")
        if self.audit_log is not None:
            self.audit_log.note(message.pack_id, remote.node_id, remote.contact())
        return AuditProof(found.block, tuple(found.proof))
