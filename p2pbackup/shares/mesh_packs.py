"""The owner's side: a `PackStore` whose packs live as shares on the mesh.

Putting a pack erasure-codes it, signs a descriptor, looks up the peers
closest to the pack id and hands share i to the i-th of them, moving a
refused or failed share on to the next closest peer (`PlacementPlan`). A
peer's "stored" is a claim: each share counts only once its peer has proven
it (an audit of a random block against the signed root), and a pack counts
as put only with `happy` proven shares, so a backup never reports saved what
the mesh does not hold.
Getting a pack asks the k closest peers for whatever share each holds (the
data shares, in placement order), checks every share against its signed
descriptor and rebuilds from the first k good ones (`rebuild`); a corrupted
or forged share costs one more question, not the pack, and a holder that
hangs costs one stall interval, not the request timeout (`mesh_fetch`,
`gathering`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import trio

from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.descriptor import ShareDescriptor, describe_pack, same_share_set
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packstore import PackReceipt, PackUnavailable
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError, WireError
from p2pbackup.net.contact import Contact
from p2pbackup.placement.plan import PlacementPlan, short_reason
from p2pbackup.shares.gathering import HolderMemory, Pace, StallRule
from p2pbackup.shares.mesh_fetch import PackFetch
from p2pbackup.shares.messages import ShareData
from p2pbackup.shares.placing import place_shares
from p2pbackup.shares.rebuild import rebuild_pack
from p2pbackup.shares.redundancy import Redundancy, too_few_peers
from p2pbackup.shares.transfer_window import TransferGate
from p2pbackup.shares.whole_mesh import WholeMesh

log = logging.getLogger("p2pbackup.shares")
# Set to "1" in a peer's environment, its owner counts a share placed on the peer's
# word alone. Only the benchmark sets it, to measure what the proofs cost: it is not
# an option, since such an owner may report saved a snapshot the mesh does not hold.
UNPROVEN_FOR_BENCH = "P2PBACKUP_BENCH_UNPROVEN_SHARES"


PUT_STALL = StallRule(floor=5.0)
# How long a lookup that found every peer of a small mesh stands for the next packs'
# (a real peer's setting; a peer joining meanwhile is placed on within this).
WHOLE_MESH_SECONDS = 60.0


class PlacementFailed(P2PBackupError):
    """Too few distinct peers took a share of a pack."""


__all__ = [
    "UNPROVEN_FOR_BENCH",
    "WHOLE_MESH_SECONDS",
    "MeshPackStore",
    "PlacementFailed",
    "Redundancy",
]


class MeshPackStore:
    def __init__(
        self,
        dht: DhtNode,
        owner: Identity,
        redundancy: Redundancy,
        *,
        share_timeout: float = 60.0,
        run_sync: RunSync = to_thread,
        now: Callable[[], float] = time.time,
        prove: bool = True,
        rng: random.Random | None = None,
        stall: StallRule | None = None,
        put_stall: StallRule | None = None,
        whole_mesh_seconds: float = 0.0,
        share_bytes: Callable[[bytes], int | None] | None = None,
    ) -> None:
        self.dht = dht
        # Audit blocks come from the peer's generator (seeded in the simulator).
        self.rng = rng if rng is not None else dht.rng
        self.prove = prove
        self.owner = owner
        self.redundancy = redundancy
        self.share_timeout = share_timeout
        self.run_sync = run_sync
        self.now = now
        # Holders that failed or hung lately go last, and a request silent for a few
        # times what shares took lately asks another holder (decision 0029). Gets and
        # puts keep their own pace: a put carries the share one way, a get the other,
        # and a put that stalls is given up, so it gets a longer floor (a holder's disk
        # may be busy syncing).
        # Peers that refused a share (a full disk, a quota) since the owner last cleared
        # this, each with its first reason: what a backup tells its user.
        self.refused: dict[bytes, str] = {}
        # Packs placed with `happy` shares or more but fewer than n since the owner last
        # cleared this, each with the shares it got and its n: also what a backup tells.
        self.short: dict[bytes, tuple[int, int]] = {}
        rule = stall if stall is not None else StallRule()
        self.holders = HolderMemory(rule, last_heard=dht.peers.last_seen)
        self.fetch_pace = Pace(rule)
        self.put_pace = Pace(put_stall if put_stall is not None else PUT_STALL)
        # Every put of this owner's shares one uplink (decision 0097), every fetch one
        # downlink: a fetch waits for room for its share when `share_bytes` (the
        # owner's catalog) knows how long it is (decision 0098).
        self.send_gate = TransferGate()
        self.fetch_gate = TransferGate()
        self.share_bytes = share_bytes
        # A small mesh whose every peer the routing table names places packs without
        # a lookup each (`WholeMesh`); 0 looks up for every pack.
        self.whole_mesh = WholeMesh(whole_mesh_seconds)

    # ---- put -------------------------------------------------------------

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        r = self.redundancy
        lease = int(self.now()) + r.lease_seconds
        candidates = self._table_candidates(pack_id)
        if candidates is not None:  # the table is the whole mesh: no lookup to wait on
            shares, descriptor = await self.run_sync(
                _encode_and_describe, self.owner, pack_id, data, r.k, r.n, lease
            )
        else:
            # The lookup waits on the network while the coding keeps a core busy: run
            # them side by side, since the last pack of a backup waits for both.
            candidates = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._look_up, pack_id, candidates)
                shares, descriptor = await self.run_sync(
                    _encode_and_describe, self.owner, pack_id, data, r.k, r.n, lease
                )
        # From here the shares are the pack (whose bytes this frame lets go), and each
        # share goes once its holder has it: a pack waiting on its slowest holder holds
        # only what is still on its way (`drop_placed`).
        del data
        by_index = dict(enumerate(shares))
        del shares
        plan, placed, sent = await place_shares(
            self.dht,
            pack_id,
            descriptor.to_bytes(),
            by_index,
            candidates,
            happy=r.happy,
            timeout=self.share_timeout,
            prove=self.rng if self.prove else None,
            holders=self.holders,
            pace=self.put_pace,
            drop_placed=True,
            gate=self.send_gate,
        )
        if plan.failures or plan.unproven:  # the mesh may have changed: look it up again
            self.whole_mesh.forget()
        for contact, reason in plan.refused:
            self.refused.setdefault(contact.node_id, short_reason(reason))
        if not plan.happy_enough:
            raise PlacementFailed(f"pack {pack_id.hex()[:12]}: {_shortfall(plan, r)}")
        if len(plan.placed) < r.n:
            self.short[pack_id] = (len(plan.placed), r.n)
        # Which holder acknowledged which share: what a holder must still serve after
        # a crash, as its owner saw it.
        if log.isEnabledFor(logging.DEBUG):
            held = " ".join(f"{i}@{c.node_id.hex()}" for i, c in sorted(placed.items()))
            log.debug("placed %s: %s", pack_id.hex(), held)
        return PackReceipt(pack_id, r.k, r.n, len(plan.placed), sent)

    def short_summary(self) -> dict[str, int] | None:
        """How many packs were placed short since `short` was cleared, the fewest shares
        one got and the n it was short of; None when none was."""
        if not self.short:
            return None
        fewest, n = min(self.short.values())
        return {"packs": len(self.short), "fewest_shares": fewest, "n": n}

    def redundancy_for_new_packs(self, redundancy: Redundancy) -> None:
        """Packs put from now on use `redundancy`; packs already placed keep theirs."""
        self.redundancy = redundancy

    async def _look_up(self, pack_id: bytes, candidates: list[Contact]) -> None:
        """The peers closest to `pack_id` that answered, nearest first, then the suspect
        ones the lookup passed over unasked: they stay candidates, the last ones, or a
        mesh that lost a few peers for a while could not place at all."""
        skipped: set[bytes] = set()

        def skip(contact: Contact) -> bool:
            if self._suspect(contact):
                skipped.add(contact.node_id)
                return True
            return False

        found = await self.dht.lookup(pack_id, alpha=self.redundancy.n, skip=skip)
        candidates.extend(found.contacts)
        named = {c.node_id for c in candidates}
        nearby = self.dht.table.closest(pack_id, 2 * self.redundancy.n)
        candidates.extend(c for c in nearby if c.node_id not in named and self._suspect(c))
        table = frozenset(c.node_id for c in self.dht.table)
        wanted = self.dht.config.k
        self.whole_mesh.learn(found.contacts, wanted, skipped, table, trio.current_time())

    def _table_candidates(self, pack_id: bytes) -> list[Contact] | None:
        """The candidates a lookup would give, from the routing table alone, while the
        last lookup showed the table to be the whole mesh (`WholeMesh`); else None."""
        table = self.dht.table
        if len(table) >= self.dht.config.k:  # a lookup could find more than the table
            return None
        if not self.whole_mesh.holds(frozenset(c.node_id for c in table), trio.current_time()):
            return None
        ranked = table.closest(pack_id, len(table))
        healthy = [c for c in ranked if not self._suspect(c)]
        named = {c.node_id for c in healthy}
        nearby = table.closest(pack_id, 2 * self.redundancy.n)
        return healthy + [c for c in nearby if c.node_id not in named]

    def _suspect(self, contact: Contact) -> bool:
        """For lookups: a peer that failed or hung lately is not worth a wait."""
        return self.holders.suspect(contact.node_id, trio.current_time())

    # ---- get -------------------------------------------------------------

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        r = self.redundancy
        expected = self._expected_share(pack_id, size_hint)

        # Shares of another set of this pack (one re-encoded to other k/n, or the set it
        # replaces): kept aside, so a pack whose holders are half way through a
        # `repair --reencode` still rebuilds from whichever set has k.
        others: dict[tuple[bytes, ...], tuple[ShareDescriptor, dict[int, bytes]]] = {}

        async def verify(share: ShareData, chosen: ShareDescriptor | None) -> ShareDescriptor | str:
            verdict: ShareDescriptor | str = await self.run_sync(self._verify, pack_id, share)
            if isinstance(verdict, str) or chosen is None or same_share_set(verdict, chosen):
                return verdict
            others.setdefault(verdict.roots, (verdict, {}))[1][share.index] = share.data
            return "descriptor disagrees with the other shares"

        fetch = PackFetch(
            self.dht,
            self.owner,
            pack_id,
            k=r.k,
            n=r.n,
            timeout=self.share_timeout,
            memory=self.holders,
            pace=self.fetch_pace,
            verify=verify,
            # k requests, the nearest first (the data shares, in placement order); a
            # spare only until this store has seen how long shares take, as a stall
            # is noticed only at the ceiling before that (decision 0044).
            spare=0 if self.fetch_pace.known else 1,
            gate=None if expected is None else self.fetch_gate,
            expected=expected or 0,
        )
        got = await fetch.run()
        chosen, gathered = got.descriptor, got.shares
        for descriptor, shares in others.values():
            if (chosen is None or len(gathered) < chosen.k) and len(shares) >= descriptor.k:
                chosen, gathered = descriptor, shares
        if chosen is None or len(gathered) < chosen.k:
            detail = f"; {got.problems[0]}" if got.problems else ""
            # With no share found, no descriptor says how many the pack needs.
            found = (
                "no share found"
                if chosen is None
                else f"{len(gathered)} of the {chosen.k} shares needed found"
            )
            raise PackUnavailable(
                f"pack {pack_id.hex()[:12]}: {found} from the {got.asked} peers asked{detail}"
            )
        data = await self.run_sync(
            rebuild_pack, gathered, pack_id, chosen.k, chosen.n, chosen.length, chosen.version
        )
        if data is None:
            raise PackUnavailable(f"pack {pack_id.hex()[:12]} rebuilt to the wrong bytes")
        return data

    def _expected_share(self, pack_id: bytes, size_hint: int) -> int | None:
        """How long a share of the pack is, for the fetch window; None leaves the fetch
        out of it (no catalog: the simulator's owners, or no hint either).

        A pack the catalog has no row for (every pack, for an owner restoring right
        after a recovery) is split by the owner's k from the size the caller named:
        without a window, each share over a slow downlink counted as stalled and the
        fetch asked every holder, 2.3 times the bytes restored."""
        if self.share_bytes is None:
            return None
        known = self.share_bytes(pack_id)
        if known is not None:
            return known
        return -(-size_hint // self.redundancy.k) if size_hint > 0 else None

    def _verify(self, pack_id: bytes, share: ShareData) -> ShareDescriptor | str:
        """The share's descriptor if the share is sound, else why not."""
        try:
            descriptor = ShareDescriptor.from_bytes(share.descriptor)
        except WireError as exc:
            return f"malformed descriptor ({exc})"
        if descriptor.owner != self.owner.public_key or not descriptor.verify():
            return "descriptor not signed by this owner"
        if descriptor.pack_id != pack_id or share.index >= descriptor.n:
            return "descriptor for another pack"
        if not descriptor.check_share(share.index, share.data):
            return f"share {share.index} does not match its signed root"
        return descriptor


def _encode_and_describe(
    owner: Identity, pack_id: bytes, data: bytes, k: int, n: int, lease: int
) -> tuple[list[bytes], ShareDescriptor]:
    """A pack's shares and their signed descriptor, in one trip to a worker thread."""
    shares = encode_pack(data, k, n)
    return shares, describe_pack(owner, pack_id, shares, k, len(data), lease)


def _shortfall(plan: PlacementPlan, r: Redundancy) -> str:
    """Why a pack could not be placed: a mesh too small for the redundancy (with the
    command that fixes it), or peers that failed or refused (naming them)."""
    found = len({c.node_id for c in plan.candidates})
    if found >= r.happy:
        return plan.shortfall()
    refused = plan.refusal_summary()
    return too_few_peers(found, r) + (f"; {refused}" if refused else "")
