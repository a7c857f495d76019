"""The maintenance loop every storage peer runs for the shares it holds.

Each round, for every pack it holds a share of, a peer looks up the peers
closest to the pack id, asks each which share it holds, audits every claim,
and, if it is the closest proven holder and shares are missing, rebuilds
them from any k and places them on the closest peers holding none. A holder
that finds itself outside the n closest peers hands its share to a closer
peer that holds none (rebalancing). Expired shares are deleted. No owner
and no decryption key take part: shares are ciphertext.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from p2pbackup.base.ids import distance
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import decode_pack, encode_pack
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.check import audit_claim
from p2pbackup.maintenance.survey import RepairPlan, Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.audit_log import AuditLog
from p2pbackup.shares.lease_rules import newer_lease
from p2pbackup.shares.messages import GetShare, ShareData
from p2pbackup.shares.placing import place_shares
from p2pbackup.shares.upkeep_messages import QueryShare, ShareHeld
from p2pbackup.store import ShareInfo, ShareStore

log = logging.getLogger("p2pbackup.maintenance")

# Peers beyond n that a survey looks up and asks: holders that joins pushed just
# outside the n closest still count, and repair finds takers among them.
SURVEY_MARGIN = 5


@dataclass(frozen=True)
class MaintenanceConfig:
    audit_interval: float = 3600.0
    repair_threshold: int = 7
    # A holder that failed this many rounds in a row counts as lost; before
    # that its share is rebuilt only when the set is under the threshold.
    lost_after: int = 2
    request_timeout: float = 10.0
    share_timeout: float = 60.0
    parallel_packs: int = 4
    # Between full surveys (lookup, query, audit of every sibling), the keeper of a
    # whole set audits its siblings directly for this many rounds, and every other
    # holder only checks that the keeper audited it lately (or audits the keeper)
    # for `light_rounds`: a healthy set then costs about n audits a round instead
    # of n lookups, n^2 queries and n^2 audits. A closer newcomer in the routing
    # table, or any failed audit, brings the full survey back at once.
    quiet_rounds: int = 11
    light_rounds: int = 48


@dataclass
class MaintenanceStats:
    rounds: int = 0
    audits: int = 0
    audits_failed: int = 0
    repairs: int = 0
    shares_rebuilt: int = 0
    repair_bytes: int = 0
    handed_off: int = 0
    expired: int = 0
    errors: int = 0
    lookups: int = 0
    leases_adopted: int = 0
    keeper_heard: int = 0  # rounds a holder skipped because its keeper audited it
    duplicates_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _View:
    """What the last full survey of a set found, for the quiet rounds after it."""

    targets: list[tuple[Contact, int]]  # every sibling for the keeper, else the keeper
    keeper: bytes
    rounds_left: int
    neighbours: frozenset[bytes]  # peers known closer to the pack than us at that survey
    # Siblings that proved their share to us at that survey: only their audits of us
    # count as the set being watched (a holder with bad data could audit us too).
    trusted: frozenset[bytes] = frozenset()


@dataclass
class Maintainer:
    dht: DhtNode
    store: ShareStore
    config: MaintenanceConfig
    rng: random.Random
    run_sync: RunSync = to_thread
    now: Callable[[], float] = time.time
    # Shared with this peer's share holder, which notes who audited it.
    audit_log: AuditLog = field(default_factory=AuditLog)
    stats: MaintenanceStats = field(default_factory=MaintenanceStats)
    _failures: dict[bytes, int] = field(default_factory=dict)
    _views: dict[bytes, _View] = field(default_factory=dict)
    # Per held pack: the siblings (and their share index) the last survey proved or
    # suspected. Joins can push a holder out of a survey's lookup window; asking
    # the known holders too keeps such a share from being counted missing.
    _siblings: dict[bytes, dict[bytes, tuple[Contact, int]]] = field(default_factory=dict)
    # Per held pack: the peers our last repair placed shares on. One that denies
    # holding it at the next survey took it and dropped it: it counts as failed.
    _placed: dict[bytes, set[bytes]] = field(default_factory=dict)
    # Per held pack: share indices no peer claimed, and in how many surveys running.
    _unseen: dict[bytes, dict[int, int]] = field(default_factory=dict)

    @property
    def me(self) -> Contact:
        return Contact(self.dht.node_id, *self.dht.transport.listen)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            # Jitter spreads the holders of one set over the interval.
            await trio.sleep(self.config.audit_interval * (0.5 + self.rng.random()))
            await self.round()

    async def round(self) -> None:
        """One pass over every held share, then garbage collection."""
        self.stats.rounds += 1
        await self.collect_garbage()
        held = [(info.pack_id, info.idx) for info in await self.run_sync(self._held)]
        limiter = trio.CapacityLimiter(self.config.parallel_packs)

        async def one(pack_id: bytes, index: int) -> None:
            async with limiter:
                try:
                    await self.maintain(pack_id, index)
                except P2PBackupError as exc:
                    self.stats.errors += 1
                    log.info("maintaining %s: %s", pack_id.hex()[:12], exc)

        async with trio.open_nursery() as nursery:
            for pack_id, index in held:
                nursery.start_soon(one, pack_id, index)

    def _held(self) -> list[ShareInfo]:
        return list(self.store.list_shares())

    async def collect_garbage(self) -> None:
        for pack_id, index in await self.run_sync(self.store.expired, int(self.now())):
            if await self.run_sync(self.store.delete, pack_id, index):
                self.stats.expired += 1
                self._forget(pack_id)

    # ---- one share set -----------------------------------------------------

    async def maintain(self, pack_id: bytes, index: int) -> None:
        stored = await self.run_sync(self.store.get, pack_id, index)
        if stored is None:
            self._forget(pack_id)
            return  # deleted or rotted meanwhile
        descriptor = ShareDescriptor.from_bytes(stored.descriptor)
        if self._watched_by_closer(pack_id, descriptor.n):
            return
        if await self._quiet_round(pack_id, index, descriptor, stored.descriptor):
            return
        self.stats.lookups += 1
        closest = (await self.dht.lookup(pack_id, count=descriptor.n + SURVEY_MARGIN)).contacts
        survey = Survey(pack_id, descriptor, self.me, index, stored.descriptor)
        known = self._siblings.get(pack_id, {})
        await self._survey(survey, closest, known)
        if survey.live < self.config.repair_threshold and self._unclaimed(survey):
            # Under the threshold with shares nobody claimed: before rebuilding, look
            # farther, where joins may have pushed their holders.
            self.stats.lookups += 1
            wider = (await self.dht.lookup(pack_id)).contacts
            asked = {c.node_id for c in closest} | set(known)
            await self._survey(survey, [c for c in wider if c.node_id not in asked], {})
            closest = wider
        self._remember_view(pack_id, index, survey, closest)
        for node_id in self._placed.pop(pack_id, set()):
            if node_id in survey.answered and node_id not in survey.claims:
                survey.failed.add(node_id)
        for node_id in survey.failed:
            self._failures[node_id] = self._failures.get(node_id, 0) + 1
        for contact in survey.proven.values():
            self._failures.pop(contact.node_id, None)
        suspects = {
            node_id
            for node_id in survey.failed
            if self._failures.get(node_id, 0) < self.config.lost_after
        }
        # Remembered until someone else proves their index: a lost sibling's index
        # then stays claimed-and-failed (rebuilt now) rather than turning unseen.
        me = self.dht.node_id
        self._siblings[pack_id] = {
            node_id: (contact, i)
            for node_id, (contact, i) in survey.claims.items()
            if node_id != me and survey.proven.get(i, contact) is contact
        }
        plan = survey.plan(
            closest,
            threshold=self.config.repair_threshold,
            suspects=suspects,
            unseen_grace=self._unseen_grace(pack_id, survey),
            avoid={n for n, count in self._failures.items() if count >= self.config.lost_after},
        )
        # Rebuilt or handed-off shares carry the latest lease any sibling showed.
        latest = (
            stored.descriptor if survey.descriptor is descriptor else survey.descriptor.to_bytes()
        )
        if plan is not None and plan.targets:
            await self._repair(pack_id, survey.descriptor, latest, stored.data, index, plan)
        elif plan is None:
            await self._rebalance(pack_id, index, latest, stored.data, closest, survey)

    def _remember_view(
        self, pack_id: bytes, index: int, survey: Survey, closest: list[Contact]
    ) -> None:
        """After a full survey: who keeps this set, and whom the next rounds audit.

        The keeper (the closest proven holder, the one that repairs) audits every
        sibling while the set stays whole; every other holder watches only the
        keeper. A failed audit, or the rounds used up, brings a full survey back."""
        self._views.pop(pack_id, None)
        if survey.live < survey.descriptor.k:
            return
        neighbours = self._closer_than_me(
            pack_id, closest + self.dht.table.closest(pack_id, survey.descriptor.n)
        )
        keeper = survey.repairer()
        trusted = frozenset(c.node_id for c in survey.proven.values())
        if keeper.node_id == self.dht.node_id:
            if survey.live == survey.descriptor.n and not survey.failed:
                siblings = [(c, i) for i, c in survey.proven.items() if i != index]
                self._views[pack_id] = _View(
                    siblings, keeper.node_id, self.config.quiet_rounds, neighbours, trusted
                )
            return
        keeper_index = next(i for i, c in survey.proven.items() if c is keeper)
        self._views[pack_id] = _View(
            [(keeper, keeper_index)],
            keeper.node_id,
            self.config.light_rounds,
            neighbours,
            trusted,
        )

    def _watched_by_closer(self, pack_id: bytes, n: int) -> bool:
        """With no view of the set yet, did a holder closer to the pack audit us lately?

        Then someone nearer watches the set (the keeper is the closest): skip this
        round. Right after a backup this spares most first surveys. The auditor is
        not proven to us, so the next round surveys unless a trusted one is heard."""
        if pack_id in self._views:
            return False
        auditor = self._closer_auditor(pack_id, None)
        if auditor is None:
            return False
        neighbours = self._closer_than_me(pack_id, self.dht.table.closest(pack_id, n))
        self._views[pack_id] = _View([], auditor, self.config.light_rounds, neighbours)
        self.stats.keeper_heard += 1
        return True

    def _closer_auditor(self, pack_id: bytes, trusted: frozenset[bytes] | None) -> bytes | None:
        """A holder nearer the pack than us that audited us lately: the set is watched.

        Only auditors in `trusted` count (None: any). The keeper's rounds come at
        most 1.5 intervals apart (jitter), so silence for two intervals means we
        look at the set ourselves."""
        window = 2 * self.config.audit_interval
        mine = distance(self.dht.node_id, pack_id)
        auditors = self.audit_log.auditors(pack_id, window)
        closer = [
            a for a in auditors if distance(a, pack_id) < mine and (trusted is None or a in trusted)
        ]
        return min(closer, key=lambda a: distance(a, pack_id), default=None)

    def _newcomers_closer(self, pack_id: bytes, n: int, view: _View) -> bool:
        """Does the routing table know n peers closer to the pack than us, some of them
        new since the last survey? Then we may be outside the n closest: rebalance."""
        closer = self._closer_than_me(pack_id, self.dht.table.closest(pack_id, n))
        return len(closer) >= n and not closer <= view.neighbours

    def _closer_than_me(self, pack_id: bytes, contacts: list[Contact]) -> frozenset[bytes]:
        mine = distance(self.dht.node_id, pack_id)
        return frozenset(c.node_id for c in contacts if distance(c.node_id, pack_id) < mine)

    async def _quiet_round(
        self, pack_id: bytes, index: int, descriptor: ShareDescriptor, descriptor_bytes: bytes
    ) -> bool:
        """Audit only the holders the last full survey named; True when all still prove
        their shares (then nothing more this round)."""
        view = self._views.get(pack_id)
        if view is None or view.rounds_left <= 0:
            return False
        if self._newcomers_closer(pack_id, descriptor.n, view):
            self._views.pop(pack_id, None)
            return False
        view.rounds_left -= 1
        if (
            view.keeper != self.dht.node_id
            and self._closer_auditor(pack_id, view.trusted) is not None
        ):
            self.stats.keeper_heard += 1
            return True
        if not view.targets:
            return await self._vet_auditor(pack_id, index, descriptor, descriptor_bytes, view)
        targets = view.targets
        survey = Survey(pack_id, descriptor, self.me, index, descriptor_bytes)

        async def audit(contact: Contact, sibling_index: int) -> None:
            if survey.on_holding(contact, sibling_index, descriptor_bytes):
                self.stats.audits += 1
                if not await audit_claim(
                    self.dht, survey, contact, self.rng, self.config.request_timeout
                ):
                    self.stats.audits_failed += 1

        async with trio.open_nursery() as nursery:
            for contact, target_index in targets:
                nursery.start_soon(audit, contact, target_index)
        if survey.live == len(targets) + 1 and not survey.failed:
            return True
        self._views.pop(pack_id, None)
        return False

    @staticmethod
    def _claimed(survey: Survey) -> set[int]:
        """Share indices some sibling proved or at least claimed."""
        return {i for _, i in survey.claims.values()} | set(survey.proven)

    def _unclaimed(self, survey: Survey) -> bool:
        return len(self._claimed(survey)) < survey.descriptor.n

    def _unseen_grace(self, pack_id: bytes, survey: Survey) -> set[int]:
        """Indices nobody claimed, seen missing in fewer than `lost_after` surveys.

        A share nobody claims may sit with a holder that joins pushed past the
        lookup window and that will hand it closer soon; like a holder that failed
        once, it is rebuilt at once only when the set is under the threshold."""
        claimed = self._claimed(survey)
        streaks = self._unseen.get(pack_id, {})
        unseen = {i: streaks.get(i, 0) + 1 for i in range(survey.descriptor.n) if i not in claimed}
        self._unseen[pack_id] = unseen
        return {i for i, streak in unseen.items() if streak < self.config.lost_after}

    def _forget(self, pack_id: bytes) -> None:
        """We hold no share of this pack any more."""
        self._views.pop(pack_id, None)
        self._siblings.pop(pack_id, None)
        self._unseen.pop(pack_id, None)
        self._placed.pop(pack_id, None)
        self.audit_log.forget(pack_id)

    async def _vet_auditor(
        self,
        pack_id: bytes,
        index: int,
        descriptor: ShareDescriptor,
        descriptor_bytes: bytes,
        view: _View,
    ) -> bool:
        """A closer peer audited us, but we never checked it: ask what it holds and audit
        it, and if it proves its share, watch it as the keeper. False: survey."""
        auditor = self._closer_auditor(pack_id, None)
        contact = self.audit_log.contact(auditor) if auditor is not None else None
        if auditor is None or contact is None:
            return False
        timeout = self.config.request_timeout
        try:
            reply = await self.dht.transport.request(contact, QueryShare(pack_id), timeout)
        except P2PBackupError:
            return False
        held = reply.message if isinstance(reply.message, ShareHeld) else None
        survey = Survey(pack_id, descriptor, self.me, index, descriptor_bytes)
        if held is None or not survey.on_holding(contact, held.index, held.descriptor):
            return False
        self.stats.audits += 1
        if not await audit_claim(self.dht, survey, contact, self.rng, timeout):
            self.stats.audits_failed += 1
            return False
        view.targets = [(contact, held.index)]
        view.keeper = auditor
        view.trusted = frozenset({auditor})
        return True

    async def _survey(
        self,
        survey: Survey,
        closest: list[Contact],
        known: dict[bytes, tuple[Contact, int]],
    ) -> None:
        """Ask the closest peers and the siblings known from before what they hold."""
        timeout = self.config.request_timeout

        async def ask(contact: Contact) -> None:
            try:
                reply = await self.dht.transport.request(
                    contact, QueryShare(survey.pack_id), timeout
                )
            except P2PBackupError:
                remembered = known.get(contact.node_id)
                survey.on_silent(contact, remembered[1] if remembered else None)
                return
            self.dht.observe(reply.remote)
            held = reply.message if isinstance(reply.message, ShareHeld) else None
            if held is not None:
                await self._adopt_lease(survey, held.descriptor)
            index = held.index if held else None
            if not survey.on_holding(contact, index, held.descriptor if held else None):
                return
            self.stats.audits += 1
            if not await audit_claim(self.dht, survey, contact, self.rng, timeout):
                self.stats.audits_failed += 1
                log.info("audit of %s for %s failed", contact, survey.pack_id.hex()[:12])

        asked = {c.node_id for c in closest}
        extra = [c for node_id, (c, _) in known.items() if node_id not in asked]
        async with trio.open_nursery() as nursery:
            for contact in closest + extra:
                nursery.start_soon(ask, contact)

    async def _adopt_lease(self, survey: Survey, descriptor_bytes: bytes) -> None:
        """A sibling holds a later lease the owner signed: keep our share as long."""
        offered = await self.run_sync(newer_lease, survey.descriptor, descriptor_bytes)
        if offered is None:
            return
        await self.run_sync(
            self.store.renew,
            survey.pack_id,
            offered.owner,
            offered.lease_expiry,
            descriptor_bytes,
        )
        survey.descriptor = offered
        self.stats.leases_adopted += 1

    async def _repair(
        self,
        pack_id: bytes,
        descriptor: ShareDescriptor,
        descriptor_bytes: bytes,
        my_share: bytes,
        my_index: int,
        plan: RepairPlan,
    ) -> None:
        gathered = {my_index: my_share}
        for index, contact in plan.sources:
            if len(gathered) >= descriptor.k:
                break
            if index in gathered:
                continue
            share = await self._fetch(contact, pack_id)
            if share is not None and share.index == index:
                ok = await self.run_sync(descriptor.check_share, index, share.data)
                if ok:
                    gathered[index] = share.data
        if len(gathered) < descriptor.k:
            raise P2PBackupError(f"only {len(gathered)} of {descriptor.k} shares fetched")
        data = await self.run_sync(
            decode_pack, gathered, descriptor.k, descriptor.n, descriptor.length
        )
        shares = await self.run_sync(encode_pack, data, descriptor.k, descriptor.n)
        rebuilt = {i: shares[i] for i in plan.missing}
        _, placed, sent = await place_shares(
            self.dht,
            pack_id,
            descriptor_bytes,
            rebuilt,
            plan.targets,
            happy=0,
            timeout=self.config.share_timeout,
        )
        self.stats.repairs += 1
        self.stats.shares_rebuilt += len(placed)
        self._placed[pack_id] = {contact.node_id for contact in placed.values()}
        self.stats.repair_bytes += sent + sum(len(s) for s in gathered.values()) - len(my_share)
        log.info(
            "repaired %s: rebuilt shares %s on %d peers",
            pack_id.hex()[:12],
            sorted(placed),
            len(placed),
        )

    async def _fetch(self, contact: Contact, pack_id: bytes) -> ShareData | None:
        try:
            reply = await self.dht.transport.request(
                contact, GetShare(pack_id), self.config.share_timeout
            )
        except P2PBackupError:
            return None
        return reply.message if isinstance(reply.message, ShareData) else None

    async def _rebalance(
        self,
        pack_id: bytes,
        index: int,
        descriptor_bytes: bytes,
        data: bytes,
        closest: list[Contact],
        survey: Survey,
    ) -> None:
        """Outside the n closest live peers? Hand the share to a closer peer holding none.

        A share whose index a closer sibling proved this round is a second copy
        (left by a repair that could not see us): it is dropped instead."""
        n = survey.descriptor.n
        mine = distance(self.dht.node_id, pack_id)
        keeper_of_index = survey.proven.get(index)
        if keeper_of_index is not None and keeper_of_index.node_id != self.dht.node_id:
            if await self.run_sync(self.store.delete, pack_id, index):
                self._forget(pack_id)
                self.stats.duplicates_dropped += 1
                log.info(
                    "dropped share %d of %s: a closer sibling holds it", index, pack_id.hex()[:12]
                )
            return
        closer = [c for c in closest if distance(c.node_id, pack_id) < mine]
        if len(closer) < n:
            return
        holding = set(survey.claims) | survey.failed
        takers = [c for c in closer[:n] if c.node_id not in holding]
        if not takers:
            return
        _, placed, _ = await place_shares(
            self.dht,
            pack_id,
            descriptor_bytes,
            {index: data},
            takers,  # the closest that takes it; a full or refusing peer passes it on
            happy=0,
            timeout=self.config.share_timeout,
        )
        if placed:
            await self.run_sync(self.store.delete, pack_id, index)
            self._forget(pack_id)
            self.stats.handed_off += 1
            log.info("handed share %d of %s to %s", index, pack_id.hex()[:12], placed[index])
