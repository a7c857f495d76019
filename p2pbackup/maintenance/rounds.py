"""What a storage peer does about each share set it holds, round by round, sans-IO.

A full survey (a lookup, a query and an audit of every sibling) is costly, so
a holder remembers what the last one found: who keeps the set, which siblings
proved their shares, which failed and how often in a row, which indices nobody
claimed. From that it decides each round whether to skip the set, audit a few
siblings, vet a closer auditor or survey in full, and after a survey whether
to repair, drop a second copy or hand its share to a closer peer.

`Rounds` holds that memory and makes those decisions; the `Maintainer` only
performs the I/O a decision calls for and reports the outcome back. Time
reaches the decisions only through the audit log's clock and randomness only
through the seeded `random.Random`, so the simulator replays the same
decisions on virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from p2pbackup.base.ids import distance
from p2pbackup.maintenance.config import MaintenanceConfig, MaintenanceStats
from p2pbackup.maintenance.survey import RepairPlan, Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.audit_log import AuditLog

# The routing table's known contacts closest to a target: (target, count) -> nearest first.
Nearby = Callable[[bytes, int], list[Contact]]


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


# ---- what to do this round, before any survey ------------------------------


@dataclass(frozen=True)
class Skip:
    """Someone nearer watches the set: nothing to do for it this round."""


@dataclass(frozen=True)
class AuditSiblings:
    """Audit these holders the last survey named; `Rounds.on_audits` says if that was all."""

    targets: list[tuple[Contact, int]]


@dataclass(frozen=True)
class VetAuditor:
    """Ask this closer auditor what it holds and audit it; report with `on_vetted`."""

    auditor: bytes
    contact: Contact


@dataclass(frozen=True)
class FullSurvey:
    """Look the set up, ask and audit every sibling, then `settle` what was found."""


Step = Skip | AuditSiblings | VetAuditor | FullSurvey


# ---- what to do after a full survey ----------------------------------------


@dataclass(frozen=True)
class Repair:
    """We keep the set and shares are missing: rebuild them as the plan says."""

    plan: RepairPlan


@dataclass(frozen=True)
class DropCopy:
    """A closer sibling proved our very index: ours is a second copy, delete it."""


@dataclass(frozen=True)
class HandOver:
    """We are outside the n closest: give our share to the first of these that takes it."""

    takers: list[Contact]


Action = Repair | DropCopy | HandOver


@dataclass(frozen=True)
class SetMemory:
    """All `Rounds` remembers of one share set, as `set_aside` takes it out."""

    view: _View | None
    siblings: dict[bytes, tuple[Contact, int]] | None
    placed: set[bytes] | None
    unseen: dict[int, int] | None


@dataclass
class Rounds:
    """One storage peer's memory of its share sets and the decisions drawn from it."""

    node_id: bytes
    config: MaintenanceConfig
    rng: random.Random
    # Shared with this peer's share holder, which notes who audited it.
    audit_log: AuditLog
    nearby: Nearby
    stats: MaintenanceStats = field(default_factory=MaintenanceStats)
    # Per node id: surveys in a row it failed in (any pack); `lost_after` makes it lost.
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

    def pause(self) -> float:
        """Seconds until the next round; jitter spreads the holders of one set over it."""
        return self.config.audit_interval * (0.5 + self.rng.random())

    # ---- before a survey ---------------------------------------------------

    def start(self, pack_id: bytes, n: int) -> Step:
        """The first decision of a round for one held set of `n` shares."""
        view = self._views.get(pack_id)
        if view is None:
            return self._first_look(pack_id, n)
        if view.rounds_left <= 0:
            return FullSurvey()
        if self._newcomers_closer(pack_id, n, view):
            del self._views[pack_id]
            return FullSurvey()
        view.rounds_left -= 1
        if view.keeper != self.node_id and self._closer_auditor(pack_id, view.trusted) is not None:
            self.stats.keeper_heard += 1
            return Skip()
        if view.targets:
            return AuditSiblings(list(view.targets))
        auditor = self._closer_auditor(pack_id, None)
        contact = self.audit_log.contact(auditor) if auditor is not None else None
        if auditor is None or contact is None:
            return FullSurvey()
        return VetAuditor(auditor, contact)

    def _first_look(self, pack_id: bytes, n: int) -> Step:
        """With no view of the set yet, did a holder closer to the pack audit us lately?

        Then someone nearer watches the set (the keeper is the closest): skip this
        round. Right after a backup this spares most first surveys. The auditor is
        not proven to us, so the next round vets it unless a trusted one is heard."""
        auditor = self._closer_auditor(pack_id, None)
        if auditor is None:
            return FullSurvey()
        neighbours = self._closer_than_me(pack_id, self.nearby(pack_id, n))
        self._views[pack_id] = _View([], auditor, self.config.light_rounds, neighbours)
        self.stats.keeper_heard += 1
        return Skip()

    def on_audits(self, pack_id: bytes, survey: Survey, audited: int) -> bool:
        """The quiet audits of `audited` holders are in; True when all proved their shares
        (nothing more this round), False when a full survey must follow."""
        if survey.live == audited + 1 and not survey.failed:
            return True
        self._views.pop(pack_id, None)
        return False

    def on_vetted(self, pack_id: bytes, step: VetAuditor, index: int) -> None:
        """The closer auditor proved its share `index`: watch it as the set's keeper."""
        view = self._views.get(pack_id)
        if view is None:
            return
        view.targets = [(step.contact, index)]
        view.keeper = step.auditor
        view.trusted = frozenset({step.auditor})

    def known_siblings(self, pack_id: bytes) -> dict[bytes, tuple[Contact, int]]:
        """Holders the last survey proved or suspected: the next survey asks them too."""
        return self._siblings.get(pack_id, {})

    def look_wider(self, survey: Survey) -> bool:
        """Under the threshold with shares nobody claimed: before rebuilding, look
        farther, where joins may have pushed their holders."""
        return survey.live < self.config.repair_threshold and self._unclaimed(survey)

    # ---- after a survey ----------------------------------------------------

    def settle(
        self, pack_id: bytes, index: int, survey: Survey, closest: list[Contact]
    ) -> Action | None:
        """Learn from a full survey, then say what to do about the set, if anything."""
        self._remember_view(pack_id, index, survey, closest)
        suspects = self._count_failures(pack_id, survey)
        # Remembered until someone else proves their index: a lost sibling's index
        # then stays claimed-and-failed (rebuilt now) rather than turning unseen.
        self._siblings[pack_id] = {
            node_id: (contact, i)
            for node_id, (contact, i) in survey.claims.items()
            if node_id != self.node_id and survey.proven.get(i, contact) is contact
        }
        plan = survey.plan(
            closest,
            threshold=self.config.repair_threshold,
            suspects=suspects,
            unseen_grace=self._unseen_grace(pack_id, survey),
            avoid=self._lost(),
        )
        if plan is not None:
            return Repair(plan) if plan.targets else None
        return self._rebalance(pack_id, index, closest, survey)

    def _count_failures(self, pack_id: bytes, survey: Survey) -> set[bytes]:
        """Count this survey's failures against each peer; returns the suspects, peers
        that failed fewer than `lost_after` times in a row."""
        for node_id in self._placed.pop(pack_id, set()):
            if node_id in survey.answered and node_id not in survey.claims:
                survey.failed.add(node_id)
        for node_id in survey.failed:
            self._failures[node_id] = self._failures.get(node_id, 0) + 1
        for contact in survey.proven.values():
            self._failures.pop(contact.node_id, None)
        return {
            node_id
            for node_id in survey.failed
            if self._failures.get(node_id, 0) < self.config.lost_after
        }

    def _lost(self) -> set[bytes]:
        """Peers that failed `lost_after` surveys in a row: they get no rebuilt share."""
        return {n for n, count in self._failures.items() if count >= self.config.lost_after}

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
            pack_id, closest + self.nearby(pack_id, survey.descriptor.n)
        )
        keeper = survey.repairer()
        trusted = frozenset(c.node_id for c in survey.proven.values())
        if keeper.node_id == self.node_id:
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

    def _rebalance(
        self, pack_id: bytes, index: int, closest: list[Contact], survey: Survey
    ) -> Action | None:
        """Outside the n closest live peers? Hand the share to a closer peer holding none.

        A share whose index a closer sibling proved this round is a second copy
        (left by a repair that could not see us): it is dropped instead."""
        keeper_of_index = survey.proven.get(index)
        if keeper_of_index is not None and keeper_of_index.node_id != self.node_id:
            return DropCopy()
        n = survey.descriptor.n
        mine = distance(self.node_id, pack_id)
        closer = [c for c in closest if distance(c.node_id, pack_id) < mine]
        if len(closer) < n:
            return None
        holding = set(survey.claims) | survey.failed
        takers = [c for c in closer[:n] if c.node_id not in holding]
        return HandOver(takers) if takers else None

    # ---- outcomes ----------------------------------------------------------

    def on_repaired(self, pack_id: bytes, placed: dict[int, Contact], moved: int) -> None:
        """A repair placed these rebuilt shares, moving `moved` bytes over the network."""
        self.stats.repairs += 1
        self.stats.shares_rebuilt += len(placed)
        self._placed[pack_id] = {contact.node_id for contact in placed.values()}
        self.stats.repair_bytes += moved

    def on_dropped(self, pack_id: bytes) -> None:
        """Our second copy of a share is deleted."""
        self.forget(pack_id)
        self.stats.duplicates_dropped += 1

    def on_handed_over(self, pack_id: bytes) -> None:
        """A closer peer took our share and ours is deleted."""
        self.forget(pack_id)
        self.stats.handed_off += 1

    def on_expired(self, pack_id: bytes) -> None:
        """The share's lease ran out and it is deleted."""
        self.stats.expired += 1
        self.forget(pack_id)

    def forget(self, pack_id: bytes) -> None:
        """We hold no share of this pack any more."""
        self._views.pop(pack_id, None)
        self._siblings.pop(pack_id, None)
        self._unseen.pop(pack_id, None)
        self._placed.pop(pack_id, None)
        self.audit_log.forget(pack_id)

    def set_aside(self, pack_id: bytes) -> SetMemory:
        """Take out what is remembered of one set: a peer holding two owners' sets under
        one pack id (a squatter's beside the owner's) keeps each one's memory apart."""
        return SetMemory(
            self._views.pop(pack_id, None),
            self._siblings.pop(pack_id, None),
            self._placed.pop(pack_id, None),
            self._unseen.pop(pack_id, None),
        )

    def bring_back(self, pack_id: bytes, memory: SetMemory) -> None:
        """Put back what `set_aside` took out, replacing what is remembered now."""
        self.set_aside(pack_id)
        if memory.view is not None:
            self._views[pack_id] = memory.view
        if memory.siblings is not None:
            self._siblings[pack_id] = memory.siblings
        if memory.placed is not None:
            self._placed[pack_id] = memory.placed
        if memory.unseen is not None:
            self._unseen[pack_id] = memory.unseen

    # ---- helpers -----------------------------------------------------------

    def _closer_auditor(self, pack_id: bytes, trusted: frozenset[bytes] | None) -> bytes | None:
        """A holder nearer the pack than us that audited us lately: the set is watched.

        Only auditors in `trusted` count (None: any). The keeper's rounds come at
        most 1.5 intervals apart (jitter), so silence for two intervals means we
        look at the set ourselves."""
        window = 2 * self.config.audit_interval
        mine = distance(self.node_id, pack_id)
        auditors = self.audit_log.auditors(pack_id, window)
        closer = [
            a for a in auditors if distance(a, pack_id) < mine and (trusted is None or a in trusted)
        ]
        return min(closer, key=lambda a: distance(a, pack_id), default=None)

    def _newcomers_closer(self, pack_id: bytes, n: int, view: _View) -> bool:
        """Does the routing table know n peers closer to the pack than us, some of them
        new since the last survey? Then we may be outside the n closest: rebalance."""
        closer = self._closer_than_me(pack_id, self.nearby(pack_id, n))
        return len(closer) >= n and not closer <= view.neighbours

    def _closer_than_me(self, pack_id: bytes, contacts: list[Contact]) -> frozenset[bytes]:
        mine = distance(self.node_id, pack_id)
        return frozenset(c.node_id for c in contacts if distance(c.node_id, pack_id) < mine)

    def _unclaimed(self, survey: Survey) -> bool:
        return len(survey.claimed()) < survey.descriptor.n

    def _unseen_grace(self, pack_id: bytes, survey: Survey) -> set[int]:
        """Indices nobody claimed, seen missing in fewer than `lost_after` surveys.

        A share nobody claims may sit with a holder that joins pushed past the
        lookup window and that will hand it closer soon; like a holder that failed
        once, it is rebuilt at once only when the set is under the threshold."""
        claimed = survey.claimed()
        streaks = self._unseen.get(pack_id, {})
        unseen = {i: streaks.get(i, 0) + 1 for i in range(survey.descriptor.n) if i not in claimed}
        self._unseen[pack_id] = unseen
        return {i for i, streak in unseen.items() if streak < self.config.lost_after}
