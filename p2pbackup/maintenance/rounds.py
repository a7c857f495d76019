"""What a storage peer does about each share set it holds, round by round, sans-IO.

A full survey (a lookup, a query and an audit of every sibling) is costly, so
a holder remembers what the last one found: who keeps the set, which siblings
proved their shares, which failed and how often in a row, which indices nobody
claimed. From that it decides each round whether to skip the set, audit a few
siblings, vet a closer auditor or survey in full, and after a survey whether
to repair, drop a second copy or hand its share to a closer peer. It acts
only on what it saw first-hand: indices established over spaced rounds
(`proofs`), peers it vetted itself (`holder_rules`, decision 0021). The
`Maintainer` performs the I/O; clocks and randomness are injected, so the
simulator replays the same decisions on virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from p2pbackup.base.ids import distance
from p2pbackup.maintenance.auditors import CloserAuditors
from p2pbackup.maintenance.config import MaintenanceConfig, MaintenanceStats
from p2pbackup.maintenance.failures import FailureCounts
from p2pbackup.maintenance.first_waits import FirstWaits
from p2pbackup.maintenance.holder_rules import (
    FirstHand,
    closer_vetted,
    copy_pending,
    handover_takers,
    keeper_of,
    may_drop,
    n_nearer,
    spread_plan,
)
from p2pbackup.maintenance.keepers import KeeperWatch
from p2pbackup.maintenance.proofs import ProofHistory
from p2pbackup.maintenance.steps import (
    Action,
    AuditSiblings,
    AwaitProofs,
    DropCopy,
    FullSurvey,
    HandOver,
    Repair,
    SetView,
    Skip,
    Step,
    VetAuditor,
)
from p2pbackup.maintenance.survey import RepairPlan, Survey
from p2pbackup.maintenance.unseen import look_wider, unseen_after
from p2pbackup.net.contact import Contact
from p2pbackup.shares.audit_log import AuditLog

# Callers import the decisions (steps, actions) from here, in one place.
__all__ = ["Action", "AuditSiblings", "AwaitProofs", "DropCopy", "FullSurvey", "HandOver", "Nearby"]
__all__ += ["Repair", "Rounds", "Skip", "Step", "VetAuditor"]

# The routing table's known contacts closest to a target: (target, count) -> nearest first.
Nearby = Callable[[bytes, int], list[Contact]]


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
    # Vetting and address blocks, as this peer saw them itself.
    first_hand: FirstHand = field(kw_only=True)
    # The clock proofs are spaced on (the audit log's).
    now: Callable[[], float] = field(kw_only=True)
    # Told of every sibling that claimed a share and could not prove it: vetting restarts.
    failed_audit: Callable[[bytes], None] = field(kw_only=True, default=lambda _: None)
    proofs: ProofHistory = field(init=False)
    # Per pack whose copy went to a taker (or that a closer vetted sibling also holds):
    # full surveys left before ours may go; 1 after a failed quiet audit: survey next.
    # Bounded: a copy that cannot go yet is looked at again at the usual full surveys.
    _pending: dict[bytes, int] = field(default_factory=dict)
    keepers: KeeperWatch = field(init=False)
    auditors: CloserAuditors = field(init=False)
    failures: FailureCounts = field(init=False)
    _views: dict[bytes, SetView] = field(default_factory=dict)
    # Per held pack: the siblings (and their share index) the last survey proved or
    # suspected. Joins can push a holder out of a survey's lookup window; asking
    # the known holders too keeps such a share from being counted missing.
    _siblings: dict[bytes, dict[bytes, tuple[Contact, int]]] = field(default_factory=dict)
    # Per held pack: the peers our last repair placed shares on. One that denies
    # holding it at the next survey took it and dropped it: it counts as failed.
    _placed: dict[bytes, set[bytes]] = field(default_factory=dict)
    # Per held pack: share indices no peer claimed, and in how many surveys running.
    _unseen: dict[bytes, dict[int, int]] = field(default_factory=dict)
    first_waits: FirstWaits = field(init=False)

    def __post_init__(self) -> None:
        config = self.config
        self.proofs = ProofHistory(config.proof_rounds, config.proof_span_seconds, config.gap)
        self.keepers = KeeperWatch(config.lost_after)
        self.failures = FailureCounts(config.lost_after)
        within = 2 * config.audit_interval
        self.auditors = CloserAuditors(
            self.node_id, self.audit_log, self.proofs, self.keepers, within
        )
        self.first_waits = FirstWaits(self.node_id, self.nearby)

    def pause(self) -> float:
        """Seconds until the next round; jitter spreads the holders of one set over it."""
        return self.config.audit_interval * (0.5 + self.rng.random())

    # ---- before a survey ---------------------------------------------------

    def start(self, pack_id: bytes, n: int) -> Step:
        """The first decision of a round for one held set of `n` shares."""
        view = self._views.get(pack_id)
        forced = self._pending.get(pack_id, 0)
        if forced > 0:
            self._pending[pack_id] = forced - 1
            return self._await_proofs(pack_id, n) if forced > 1 else FullSurvey()
        if view is None:
            return self._first_look(pack_id, n)
        if view.rounds_left <= 0:
            return FullSurvey()
        if self._newcomers_closer(pack_id, n, view):
            del self._views[pack_id]
            return FullSurvey()
        view.rounds_left -= 1
        if view.keeper != self.node_id and self.auditors.closest(pack_id, trusted=True) is not None:
            self.stats.keeper_heard += 1
            return Skip()
        vet = self.auditors.to_vet(pack_id)
        if view.targets and (
            vet is None
            or not self.auditors.nearer_than(pack_id, view.keeper, vet, self.first_hand.vetted)
        ):
            return AuditSiblings(list(view.targets))
        return FullSurvey() if vet is None else vet

    def _await_proofs(self, pack_id: bytes, n: int) -> Step:
        """While our copy waits for closer holders' proofs: audits alone, when the
        siblings we know closer than us hold n indices between them (all that
        `may_drop` asks for); else a survey, to find the closer holders we miss.
        The last round awaiting the copy always surveys, as joins may have moved it."""
        known = self._siblings.get(pack_id, {})
        mine = distance(self.node_id, pack_id)
        closer = {i for node_id, (_, i) in known.items() if distance(node_id, pack_id) < mine}
        return AwaitProofs(list(known.values())) if len(closer) >= n else FullSurvey()

    def _first_look(self, pack_id: bytes, n: int) -> Step:
        """With no view of the set yet, did a closer holder audit us lately?

        One we established watches the set: skip this round. One we never
        established proves nothing yet (`auditors`): vet it, and watch it as
        keeper if it proves its share; if not, survey in full (decision 0050).
        With none, a set never surveyed may wait a round for one (`first_waits`)."""
        trusted = self.auditors.closest(pack_id, trusted=True)
        vet = None if trusted is not None else self.auditors.to_vet(pack_id)
        keeper = trusted if trusted is not None else vet.auditor if vet is not None else None
        if keeper is None:
            waits = self.first_waits.wait(pack_id, pack_id in self._siblings)
            return Skip() if waits else FullSurvey()
        near = closer_vetted(self.node_id, pack_id, self.nearby(pack_id, n), self.first_hand)
        self._views[pack_id] = SetView([], keeper, self.config.light_rounds, near)
        if vet is not None:
            return vet
        self.stats.keeper_heard += 1
        return Skip()

    def on_audits(self, pack_id: bytes, survey: Survey, audited: int) -> bool:
        """The quiet audits of `audited` holders are in; True when nothing more is due this
        round: all proved their shares, or the failures count as a survey's would and the
        next round surveys (a sibling is rebuilt after `lost_after` failed checks running,
        so that survey repairs when one now would have). False (survey now): fewer than
        the repair threshold proved (always so for one auditing its keeper alone), or one lied."""
        self.learn(pack_id, survey)
        if survey.live == audited + 1 and not survey.failed:
            return True
        self._views.pop(pack_id, None)
        if survey.live < self.config.repair_threshold or survey.lied:
            return False
        self.failures.count(survey.failed)
        self._pending[pack_id] = max(self._pending.get(pack_id, 0), 1)
        return True

    def on_awaited(
        self, pack_id: bytes, index: int, survey: Survey
    ) -> DropCopy | FullSurvey | None:
        """The audits of an `AwaitProofs` round are in: drop our copy when closer holders
        established the whole set (as after a survey); survey in full when one failed."""
        self.learn(pack_id, survey)
        if survey.failed:
            return FullSurvey()
        assert survey.me is not None
        established = partial(self.proofs.established, pack_id)
        drop = may_drop(survey, survey.me, index, self.first_hand, established)
        return DropCopy() if drop else None

    def on_vetted(self, pack_id: bytes, step: VetAuditor, index: int) -> None:
        """The closer auditor proved its share `index`: audit it as the set's keeper; its
        audits of us let us rest once it established that index."""
        view = self._views.get(pack_id)
        if view is None:
            return
        view.targets = [(step.contact, index)]
        view.keeper = step.auditor

    def learn(self, pack_id: bytes, survey: Survey) -> None:
        """Add a survey's or an audit's verdicts to each sibling's proof history."""
        now = self.now()
        for node_id, (_, index) in survey.passed.items():
            if node_id != self.node_id:
                self.proofs.passed(pack_id, node_id, index, now)
        for node_id in survey.flunked:
            self.proofs.flunked(pack_id, node_id)
        for node_id in survey.lied:
            self.failed_audit(node_id)

    def known_siblings(self, pack_id: bytes) -> dict[bytes, tuple[Contact, int]]:
        """Holders the last survey proved or suspected: the next survey asks them too."""
        return self._siblings.get(pack_id, {})

    def look_wider(self, survey: Survey) -> bool:
        """Before rebuilding shares nobody claimed: look farther first (`unseen`)."""
        streaks = self._unseen.get(survey.pack_id, {})
        return look_wider(survey, streaks, self.config.lost_after, self.config.repair_threshold)

    # ---- after a survey ----------------------------------------------------

    def settle(
        self, pack_id: bytes, index: int, survey: Survey, closest: list[Contact]
    ) -> Action | None:
        """Learn from a full survey, then say what to do about the set, if anything."""
        self.learn(pack_id, survey)
        suspects = self._count_failures(pack_id, survey)
        # Remembered until someone else proves their index: a lost sibling's index
        # then stays claimed-and-failed (rebuilt now) rather than turning unseen.
        self._siblings[pack_id] = {
            node_id: (contact, i)
            for node_id, (contact, i) in survey.claims.items()
            if node_id != self.node_id and survey.proven.get(i, contact) is contact
        }
        grace = self._unseen_grace(pack_id, survey)

        def plan(keeper: bytes) -> RepairPlan | None:
            return survey.plan(
                closest,
                threshold=self.config.repair_threshold,
                suspects=suspects,
                unseen_grace=grace,
                avoid=self.failures.lost(),
                keeper=keeper,
            )

        keeper = self._keeper(pack_id, survey, plan)
        self._remember_view(pack_id, index, survey, closest, keeper)
        found = plan(keeper.node_id)
        if found is not None:
            return Repair(spread_plan(survey, found, self.first_hand)) if found.targets else None
        return self._rebalance(pack_id, index, closest, survey)

    def _keeper(
        self, pack_id: bytes, survey: Survey, plan: Callable[[bytes], RepairPlan | None]
    ) -> Contact:
        """The set's keeper in our view; one that left it wanting repair for `lost_after`
        surveys running is passed over from then on, and the next one repairs."""
        assert survey.me is not None
        if survey.live == survey.descriptor.n and not survey.failed:
            self.keepers.whole(pack_id)
        established = partial(self.proofs.established, pack_id)
        keeper = keeper_of(survey, survey.me, established, self.keepers.passed_over(pack_id))
        idle = keeper.node_id != self.node_id and plan(self.node_id) is not None
        if not self.keepers.idle(pack_id, keeper.node_id if idle else None):
            return keeper
        return keeper_of(survey, survey.me, established, self.keepers.passed_over(pack_id))

    def _count_failures(self, pack_id: bytes, survey: Survey) -> set[bytes]:
        """Count this survey's failures against each peer; returns the suspects, peers
        that failed fewer than `lost_after` times in a row."""
        for node_id in self._placed.pop(pack_id, set()):
            if node_id in survey.answered and node_id not in survey.claims:
                survey.failed.add(node_id)
        self.failures.count(survey.failed, (c.node_id for c in survey.proven.values()))
        return self.failures.suspects(survey.failed)

    def _remember_view(
        self, pack_id: bytes, index: int, survey: Survey, closest: list[Contact], keeper: Contact
    ) -> None:
        """After a full survey: whom the next rounds audit.

        The keeper (`holder_rules.keeper_of`, the one that repairs) audits every
        sibling while the set stays whole; every other holder watches only the
        keeper. A failed audit, or the rounds used up, brings a full survey back."""
        self._views.pop(pack_id, None)
        if survey.live < survey.descriptor.k:
            return
        nearby = closest + self.nearby(pack_id, survey.descriptor.n)
        neighbours = closer_vetted(self.node_id, pack_id, nearby, self.first_hand)
        if keeper.node_id == self.node_id:
            if survey.live == survey.descriptor.n and not survey.failed:
                siblings = [(c, i) for i, c in survey.proven.items() if i != index]
                self._views[pack_id] = SetView(
                    siblings, keeper.node_id, self.config.quiet_rounds, neighbours
                )
            return
        keeper_index = survey.passed[keeper.node_id][1]
        self._views[pack_id] = SetView(
            [(keeper, keeper_index)], keeper.node_id, self.config.light_rounds, neighbours
        )

    def _rebalance(
        self, pack_id: bytes, index: int, closest: list[Contact], survey: Survey
    ) -> Action | None:
        """Copy-then-drop: outside the n closest vetted peers, copy our share to a closer
        vetted one; once closer holders established n indices, ours by a vetted taker
        (or a repair's second copy), delete ours. Until then survey in full each round."""
        assert survey.me is not None
        if copy_pending(survey, survey.me, index, self.first_hand):
            if may_drop(
                survey, survey.me, index, self.first_hand, partial(self.proofs.established, pack_id)
            ):
                return DropCopy()
            self._pending.setdefault(pack_id, self.config.forced_surveys)
            return None
        self._pending.pop(pack_id, None)
        takers = handover_takers(survey, survey.me, closest, self.first_hand)
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

    def on_handed_over(self, pack_id: bytes, taker: tuple[Contact, int] | None = None) -> None:
        """A closer peer took a copy of our share (`taker`: it, and the index); ours
        stays until it proves it, and until then it is audited with the siblings."""
        self._pending[pack_id] = self.config.forced_surveys
        if taker is not None:
            self._siblings.setdefault(pack_id, {})[taker[0].node_id] = taker
        self.stats.handed_off += 1

    def on_expired(self, pack_id: bytes) -> None:
        """The share's lease ran out and it is deleted."""
        self.stats.expired += 1
        self.forget(pack_id)

    def forget(self, pack_id: bytes) -> None:
        """We hold no share of this pack any more."""
        for table in self.per_pack():
            table.pop(pack_id, None)
        self.audit_log.forget(pack_id)

    def kept(self) -> dict[str, dict[bytes, Any]]:
        """What a restart keeps (`saved_state`), to fill in place; not views: it surveys."""
        names = ("pending", "failures", "siblings", "placed", "unseen")
        tables = (self._pending, self.failures.counts, self._siblings, self._placed, self._unseen)
        return dict(zip(names, tables, strict=True))

    def per_pack(self) -> tuple[dict[bytes, Any], ...]:
        """Every table this peer keeps per held pack (`set_memory` moves entries out)."""
        own: tuple[dict[bytes, Any], ...] = (
            self._views,
            self._siblings,
            self._placed,
            self._unseen,
            self._pending,
            self.first_waits.waited,
        )
        return own + self.proofs.per_pack() + self.keepers.per_pack()

    # ---- helpers -----------------------------------------------------------

    def _newcomers_closer(self, pack_id: bytes, n: int, view: SetView) -> bool:
        """Does the routing table know n peers closer to the pack than us, some of them
        new since the last survey? Then we may be outside the n closest: rebalance."""
        near = self.nearby(pack_id, n)
        if not n_nearer(self.node_id, pack_id, near, n):
            return False  # we are among the n closest we know: nobody to ask about vetting
        closer = closer_vetted(self.node_id, pack_id, near, self.first_hand)
        return len(closer) >= n and not closer <= view.neighbours

    def _unseen_grace(self, pack_id: bytes, survey: Survey) -> set[int]:
        """Indices nobody claimed, seen missing in fewer than `lost_after` surveys."""
        self._unseen[pack_id] = unseen = unseen_after(survey, self._unseen.get(pack_id, {}))
        return {i for i, streak in unseen.items() if streak < self.config.lost_after}
