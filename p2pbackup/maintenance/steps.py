"""What a holder may decide about a held share set, round by round.

`Rounds` decides; the `Maintainer` performs. The steps (what to do before a
survey) and actions (what to do after one) are plain values between them, so
the decisions are tested with no network at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pbackup.maintenance.survey import RepairPlan
from p2pbackup.net.contact import Contact


@dataclass
class SetView:
    """What the last full survey of a set found, for the quiet rounds after it."""

    targets: list[tuple[Contact, int]]  # every sibling for the keeper, else the keeper
    keeper: bytes
    rounds_left: int
    neighbours: frozenset[bytes]  # vetted peers known closer to the pack than us then


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
class AwaitProofs:
    """Our share has a copy closer to the pack: audit the siblings the last survey
    named and the copy's holder, so their proofs build up; `Rounds.on_awaited`
    says whether our copy may go or a full survey must follow."""

    targets: list[tuple[Contact, int]]


@dataclass(frozen=True)
class FullSurvey:
    """Look the set up, ask and audit every sibling, then `settle` what was found."""


Step = Skip | AuditSiblings | VetAuditor | AwaitProofs | FullSurvey


# ---- what to do after a full survey ----------------------------------------


@dataclass(frozen=True)
class Repair:
    """We keep the set and shares are missing: rebuild them as the plan says."""

    plan: RepairPlan


@dataclass(frozen=True)
class DropCopy:
    """Closer siblings established n indices, ours among them: delete our copy."""


@dataclass(frozen=True)
class HandOver:
    """We are outside the n closest vetted peers: copy our share to the first of these
    that takes it; ours goes only once the taker established the index (`DropCopy`)."""

    takers: list[Contact]


Action = Repair | DropCopy | HandOver
