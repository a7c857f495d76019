"""Which holders nearer a pack than us audited us lately, and which of them we trust, sans-IO.

A holder rests while a closer sibling it established audits it each round:
someone nearer watches the set. A closer auditor it never established proves
nothing yet (an identity ground close to the pack could audit it to silence
its repairs), so it is vetted first: asked what it holds and audited. A
keeper this holder passed over for leaving a set unrepaired counts for
neither (`keepers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from p2pbackup.base.ids import distance
from p2pbackup.maintenance.keepers import KeeperWatch
from p2pbackup.maintenance.proofs import ProofHistory
from p2pbackup.maintenance.steps import VetAuditor
from p2pbackup.shares.audit_log import AuditLog


@dataclass
class CloserAuditors:
    """One holder's reading of its audit log: whose audits let it rest, whom to vet."""

    node_id: bytes
    audit_log: AuditLog
    proofs: ProofHistory
    keepers: KeeperWatch
    # How recent an audit must be to count: a keeper's rounds come at most 1.5
    # intervals apart (jitter), so two intervals of silence mean nobody watches.
    within: float

    def closest(self, pack_id: bytes, *, trusted: bool) -> bytes | None:
        """The nearest holder closer to the pack than us that audited us lately; with
        `trusted`, only one whose index we established."""
        mine = distance(self.node_id, pack_id)
        demoted = self.keepers.passed_over(pack_id)
        auditors = self.audit_log.auditors(pack_id, self.within)
        closer = [a for a in auditors if distance(a, pack_id) < mine and a not in demoted]
        if trusted:
            established = partial(self.proofs.established, pack_id)
            closer = [a for a in closer if established(a) is not None]
        return min(closer, key=lambda a: distance(a, pack_id), default=None)

    def to_vet(self, pack_id: bytes) -> VetAuditor | None:
        """The nearest closer auditor, to ask what it holds and audit; None if none."""
        auditor = self.closest(pack_id, trusted=False)
        contact = self.audit_log.contact(auditor) if auditor is not None else None
        return None if auditor is None or contact is None else VetAuditor(auditor, contact)

    def nearer_than(
        self, pack_id: bytes, keeper: bytes, vet: VetAuditor, vetted: Callable[[bytes], bool]
    ) -> bool:
        """Is the auditor to vet nearer the pack than the keeper we watch (not us), and a
        peer we vetted? Its audits come each round as a keeper's do: watch it instead,
        once it proved its share. One that failed an audit of ours lately is not
        vetted: it must not buy a survey a round by failing on purpose."""
        if keeper == self.node_id or not vetted(vet.auditor):
            return False
        return distance(vet.auditor, pack_id) < distance(keeper, pack_id)
