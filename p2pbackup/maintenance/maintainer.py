"""The maintenance loop every storage peer runs for the shares it holds.

Each round, for every pack it holds a share of, a peer looks up the peers
closest to the pack id, asks each which share it holds, audits every claim,
and, if it is the set's keeper and shares are missing, rebuilds
them from any k and places them on the closest peers holding none. A holder
that finds itself outside the n closest peers hands its share to a closer
peer that holds none (rebalancing: a copy, ours goes once the copy is
proven over several rounds). Expired shares are deleted. No owner
and no decryption key take part: shares are ciphertext.

What to do is decided by `Rounds`, which remembers each set between rounds;
this driver only performs the lookups, requests and store calls a decision
names and reports what came of them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.descriptor import ShareDescriptor, parsed_descriptor
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.audit import audit_claim, judge_proof, query_share
from p2pbackup.maintenance.config import SURVEY_MARGIN, MaintenanceConfig, MaintenanceStats
from p2pbackup.maintenance.holder_rules import FirstHand, near_enough
from p2pbackup.maintenance.lookups_seen import LookupsSeen
from p2pbackup.maintenance.repair import rebuild_from_siblings
from p2pbackup.maintenance.rounds import (
    Action,
    AuditSiblings,
    AwaitProofs,
    DropCopy,
    FullSurvey,
    HandOver,
    Repair,
    Rounds,
    Skip,
    VetAuditor,
)
from p2pbackup.maintenance.set_memory import SetsApart
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.audit_log import AuditLog
from p2pbackup.shares.lease_rules import capped_lease, newer_lease
from p2pbackup.shares.placing import place_shares
from p2pbackup.shares.upkeep_messages import ShareHeld
from p2pbackup.store import ShareInfo, ShareStore, StoredShare

log = logging.getLogger("p2pbackup.maintenance")


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
    # Awaited at the end of every round: the service saves what a restart keeps.
    after_round: Callable[[], Awaitable[None]] | None = None
    # What to do about each held set; shares `stats` with this loop.
    rounds: Rounds = field(init=False)
    # Whether a set's last lookup found the routing table complete there.
    lookups_seen: LookupsSeen = field(init=False)
    # The memory of a set that shares its pack id with another owner's.
    _apart: SetsApart = field(init=False)

    def __post_init__(self) -> None:
        self.rounds = Rounds(
            self.dht.node_id,
            self.config,
            self.rng,
            self.audit_log,
            lambda target, count: self.dht.table.closest(target, count),
            self.stats,
            first_hand=FirstHand(
                lambda node_id: self.dht.vetted(node_id, self.config.vetting_period),
                lambda contact: self.dht.block_of(contact),
            ),
            now=trio.current_time,
            failed_audit=lambda node_id: self.dht.peers.failed_audit(node_id, trio.current_time()),
        )
        trust_for = self.config.audit_interval * self.config.lookup_trust_rounds
        self.lookups_seen = LookupsSeen(self.dht.node_id, trust_for, trio.current_time)
        self._apart = SetsApart(lambda: self.rounds.per_pack() + self.lookups_seen.per_pack())

    @property
    def me(self) -> Contact:
        return Contact(self.dht.node_id, *self.dht.transport.listen)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.rounds.pause())
            try:
                await self.round()
            except OSError as exc:  # listing or collecting failed: the next round tries again
                self.stats.errors += 1
                log.warning("maintenance round ended early: %s", exc)
            if self.after_round is not None:
                await self.after_round()

    async def round(self) -> None:
        """One pass over every held share, then garbage collection."""
        self.stats.rounds += 1
        await self.collect_garbage()
        held: dict[bytes, list[tuple[int, bytes]]] = {}
        for info in await self.run_sync(self._held):
            held.setdefault(info.pack_id, []).append((info.idx, info.owner))
        limiter = trio.CapacityLimiter(self.config.parallel_packs)

        kept = {(pack_id, owner) for pack_id, shares in held.items() for _, owner in shares}
        self._apart.keep_only(kept)
        self.lookups_seen.keep_only(held)

        async def one(pack_id: bytes, shares: list[tuple[int, bytes]]) -> None:
            async with limiter:
                for index, owner in shares:
                    # Two owners' sets under one pack id (one squats it): `Rounds` remembers
                    # by pack id, so each set's memory is brought back for its turn only.
                    self._apart.bring_back(pack_id, owner)
                    await self._maintain_one(pack_id, index, owner)
                    if len(shares) > 1:
                        self._apart.set_aside(pack_id, owner)

        async with trio.open_nursery() as nursery:
            for pack_id, shares in held.items():
                nursery.start_soon(one, pack_id, shares)

    async def _maintain_one(self, pack_id: bytes, index: int, owner: bytes) -> None:
        try:
            await self.maintain(pack_id, index, owner)
        except P2PBackupError as exc:
            self.stats.errors += 1
            log.info("maintaining %s: %s", pack_id.hex()[:12], exc)
        except OSError as exc:  # a disk or descriptor error costs this pack a round
            self.stats.errors += 1
            log.warning("maintaining %s: %s", pack_id.hex()[:12], exc)

    def _held(self) -> list[ShareInfo]:
        return list(self.store.list_shares())

    async def collect_garbage(self) -> None:
        for pack_id, index, owner in await self.run_sync(self.store.expired, int(self.now())):
            if await self.run_sync(self.store.delete, pack_id, index, owner):
                self.rounds.on_expired(pack_id)

    # ---- one share set -----------------------------------------------------

    async def maintain(self, pack_id: bytes, index: int, owner: bytes) -> None:
        """This round for one held share: do what `Rounds` decides, and when a quiet
        round finds trouble (or was never enough), survey the set in full."""
        stored = await self.run_sync(self.store.get, pack_id, index, owner)
        if stored is None:
            self.rounds.forget(pack_id)
            return  # deleted or rotted meanwhile
        descriptor = parsed_descriptor(stored.descriptor)
        step = self.rounds.start(pack_id, descriptor.n)
        if isinstance(step, Skip):
            return
        survey = Survey(pack_id, descriptor, self.me, index, stored.descriptor)
        if isinstance(step, AuditSiblings):
            await self._audit_all(survey, step.targets)
            if self.rounds.on_audits(pack_id, survey, len(step.targets)):
                return
        elif isinstance(step, VetAuditor) and await self._vet(survey, step):
            return
        elif isinstance(step, AwaitProofs):
            await self._audit_all(survey, step.targets)
            after = self.rounds.on_awaited(pack_id, index, survey)
            if not isinstance(after, FullSurvey):
                if after is not None:
                    await self._act(after, survey, (index, stored.data), stored.descriptor)
                return
        await self._full_survey(pack_id, index, descriptor, stored)

    async def _audit_all(self, survey: Survey, targets: list[tuple[Contact, int]]) -> None:
        """The quiet round: audit only the holders the last full survey named."""
        descriptor_bytes = survey.descriptor_bytes

        async def audit(contact: Contact, sibling_index: int) -> None:
            if survey.on_holding(contact, sibling_index, descriptor_bytes, fresh=False):
                await self._audit(survey, contact)

        async with trio.open_nursery() as nursery:
            for contact, target_index in targets:
                nursery.start_soon(audit, contact, target_index)

    async def _vet(self, survey: Survey, step: VetAuditor) -> bool:
        """A closer peer audited us, but we never checked it: ask what it holds and audit
        it, and if it proves its share, watch it as the keeper. False: survey."""
        block = survey.draw_block(self.rng)
        holding = await query_share(
            self.dht,
            step.contact,
            survey.pack_id,
            survey.descriptor.owner,
            self.config.request_timeout,
            block,
        )
        held = holding.held if holding is not None else None
        if held is None or not survey.on_holding(step.contact, held.index, held.descriptor):
            return False
        proven = self._judge(survey, step.contact, held, block)
        self.rounds.learn(survey.pack_id, survey)
        if not proven:
            return False
        self.rounds.on_vetted(survey.pack_id, step, held.index)
        return True

    async def _audit(self, survey: Survey, contact: Contact) -> bool:
        """Audit one claim `survey` accepted, counting it; True if proven."""
        self.stats.audits += 1
        if await audit_claim(self.dht, survey, contact, self.rng, self.config.request_timeout):
            return True
        self.stats.audits_failed += 1
        return False

    def _judge(self, survey: Survey, contact: Contact, held: ShareHeld, block: int) -> bool:
        """Judge the proof a claim came with as an audit, counting it; True if proven."""
        self.stats.audits += 1
        if judge_proof(survey, contact, held, block):
            return True
        self.stats.audits_failed += 1
        return False

    async def _full_survey(
        self, pack_id: bytes, index: int, descriptor: ShareDescriptor, stored: StoredShare
    ) -> None:
        """Ask and audit every holder near the set, then do what `Rounds` settles on.

        The routing table's nearest peers and the siblings known from before are asked
        first; only when fewer than n of those answer, an audit fails or we may be
        near the edge of the n closest is the set looked up and the peers the lookup
        adds asked too (decision 0056)."""
        survey = Survey(pack_id, descriptor, self.me, index, stored.descriptor)
        known = self.rounds.known_siblings(pack_id)
        near = self.dht.table.closest(pack_id, descriptor.n + SURVEY_MARGIN)
        await self._survey(survey, near, known)
        trusted = self.lookups_seen.table_trusted(pack_id)
        if near_enough(survey, near, SURVEY_MARGIN, edge_trusted=trusted):
            closest = [c for c in near if c.node_id in survey.answered]
        else:
            self.stats.lookups += 1
            found = await self.dht.lookup(pack_id, count=descriptor.n + SURVEY_MARGIN)
            closest = found.contacts
            asked = {c.node_id for c in near} | set(known)
            self.lookups_seen.looked_up(pack_id, closest, asked)
            await self._survey(survey, [c for c in closest if c.node_id not in asked], {})
        if self.rounds.look_wider(survey):
            self.stats.lookups += 1
            wider = (await self.dht.lookup(pack_id)).contacts
            asked = {c.node_id for c in closest + near} | set(known)
            await self._survey(survey, [c for c in wider if c.node_id not in asked], {})
            closest = wider
        action = self.rounds.settle(pack_id, index, survey, closest)
        # Rebuilt or handed-off shares carry the latest lease any sibling showed.
        latest = (
            stored.descriptor if survey.descriptor is descriptor else survey.descriptor.to_bytes()
        )
        if action is not None:
            await self._act(action, survey, (index, stored.data), latest)

    async def _survey(
        self,
        survey: Survey,
        closest: list[Contact],
        known: dict[bytes, tuple[Contact, int]],
    ) -> None:
        """Ask the closest peers and the siblings known from before what they hold."""

        async def ask(contact: Contact) -> None:
            block = survey.draw_block(self.rng)
            holding = await query_share(
                self.dht,
                contact,
                survey.pack_id,
                survey.descriptor.owner,
                self.config.request_timeout,
                block,
            )
            if holding is None:
                remembered = known.get(contact.node_id)
                survey.on_silent(contact, remembered[1] if remembered else None)
                return
            self.dht.observe(holding.remote)
            held = holding.held
            if held is not None:
                await self._adopt_lease(survey, held.descriptor)
            index = held.index if held else None
            if not survey.on_holding(contact, index, held.descriptor if held else None):
                return
            assert held is not None  # a claim to audit names a share
            if not self._judge(survey, contact, held, block):
                log.info("audit of %s for %s failed", contact, survey.pack_id.hex()[:12])

        asked = {c.node_id for c in closest}
        extra = [c for node_id, (c, _) in known.items() if node_id not in asked]
        async with trio.open_nursery() as nursery:
            for contact in closest + extra:
                nursery.start_soon(ask, contact)

    async def _adopt_lease(self, survey: Survey, descriptor_bytes: bytes) -> None:
        """A sibling holds a later lease the owner signed: keep our share as long.

        A sibling showing the very bytes we hold (the usual case) offers no later
        lease: no parse, but the same checkpoint the parse's `run_sync` has, so
        the order of a round's requests is unchanged."""
        if descriptor_bytes == survey.descriptor_bytes:
            await trio.lowlevel.checkpoint()
            return
        offered = await self.run_sync(newer_lease, survey.descriptor, descriptor_bytes)
        if offered is None:
            return
        kept = capped_lease(offered.lease_expiry, self.now(), self.config.max_lease)
        await self.run_sync(self.store.renew, survey.pack_id, offered.owner, kept, descriptor_bytes)
        survey.descriptor = offered
        self.stats.leases_adopted += 1

    # ---- acting on a survey ------------------------------------------------

    async def _act(
        self, action: Action, survey: Survey, mine: tuple[int, bytes], latest: bytes
    ) -> None:
        """Repair, drop our second copy, or hand our share closer, as `Rounds` said."""
        pack_id = survey.pack_id
        index, data = mine
        if isinstance(action, Repair):
            placed, moved = await rebuild_from_siblings(
                self.dht,
                self.run_sync,
                pack_id,
                survey.descriptor,
                latest,
                mine,
                action.plan,
                self.config.share_timeout,
            )
            self.rounds.on_repaired(pack_id, placed, moved)
            log.info(
                "repaired %s: rebuilt shares %s on %d peers",
                pack_id.hex()[:12],
                sorted(placed),
                len(placed),
            )
        elif isinstance(action, DropCopy):
            owner = survey.descriptor.owner
            if await self.run_sync(self.store.delete, pack_id, index, owner):
                self.rounds.on_dropped(pack_id)
                log.info(
                    "dropped share %d of %s: closer siblings proved the whole set",
                    index,
                    pack_id.hex()[:12],
                )
        elif isinstance(action, HandOver):
            await self._hand_over(survey, index, latest, data, action.takers)

    async def _hand_over(
        self,
        survey: Survey,
        index: int,
        descriptor_bytes: bytes,
        data: bytes,
        takers: list[Contact],
    ) -> None:
        """Copy our share to the closest taker that accepts it; ours stays until the taker
        has established the index with us (`Rounds` then says `DropCopy`)."""
        pack_id = survey.pack_id
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
            self.rounds.on_handed_over(pack_id, (placed[index], index))
            log.info("copied share %d of %s to %s", index, pack_id.hex()[:12], placed[index])
