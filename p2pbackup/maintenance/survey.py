"""One holder's view of its share set in one maintenance round, sans-IO.

A holder asks the peers closest to the pack id which share they hold, audits
each claim with a random block and its Merkle path against the owner-signed
root, and from the answers decides whether the set needs repair and whether
it is the one to do it: the closest proven holder repairs, so of many
holders looking at one set, one acts. Proven holders are counted; a holder
that failed only recently is "suspect" and its share is rebuilt only when
the set is already under the repair threshold, so a peer rebooting does not
cost a repair.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from p2pbackup.base.ids import distance
from p2pbackup.codec.descriptor import ShareDescriptor, same_share_set
from p2pbackup.codec.erasure import block_count, verify_block
from p2pbackup.errors import WireError
from p2pbackup.net.contact import Contact
from p2pbackup.shares.upkeep_messages import Audit, AuditProof


@dataclass(frozen=True)
class RepairPlan:
    """Rebuild these share indices and place them on these peers, closest first."""

    missing: tuple[int, ...]
    targets: tuple[Contact, ...]
    sources: tuple[tuple[int, Contact], ...]  # proven holders to fetch k shares from


@dataclass
class Survey:
    pack_id: bytes
    descriptor: ShareDescriptor
    me: Contact | None = None  # None: an owner checking, who holds no share
    my_index: int | None = None
    # The bytes of `descriptor`, checked already: a sibling showing the very same
    # bytes (the usual case) costs no parse and no signature check.
    descriptor_bytes: bytes | None = None
    claims: dict[bytes, tuple[Contact, int]] = field(default_factory=dict)
    proven: dict[int, Contact] = field(default_factory=dict)
    failed: set[bytes] = field(default_factory=set)
    answered: set[bytes] = field(default_factory=set)
    # Every claim proven this time, closer or not: `proven` keeps one holder per index.
    passed: dict[bytes, tuple[Contact, int]] = field(default_factory=dict)
    # Challenged and not proven; of those, `lied` answered a claim made just now
    # with no proof, or with a proof that does not verify.
    flunked: set[bytes] = field(default_factory=set)
    lied: set[bytes] = field(default_factory=set)
    _fresh: set[bytes] = field(default_factory=set)
    _challenges: dict[bytes, Audit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.me is not None and self.my_index is not None:
            self.proven[self.my_index] = self.me

    def on_holding(
        self,
        contact: Contact,
        index: int | None,
        descriptor: bytes | None,
        *,
        fresh: bool = True,
    ) -> bool:
        """A sibling's answer to QUERY_SHARE (`fresh`), or the claim a past survey
        remembered (not fresh); True when the claim should be audited."""
        self.answered.add(contact.node_id)
        if fresh:
            self._fresh.add(contact.node_id)
        if index is None or descriptor is None:
            return False
        if descriptor == self.descriptor_bytes:
            theirs = self.descriptor
        else:
            try:
                theirs = ShareDescriptor.from_bytes(descriptor)
            except WireError:
                self.failed.add(contact.node_id)
                return False
        if (theirs is not self.descriptor and not theirs.verify()) or not same_share_set(
            self.descriptor, theirs
        ):
            self.failed.add(contact.node_id)
            return False
        if not 0 <= index < self.descriptor.n:
            self.failed.add(contact.node_id)
            return False
        self.claims[contact.node_id] = (contact, index)
        return True

    def on_silent(self, contact: Contact, known_index: int | None = None) -> None:
        """No answer at all: it may be gone, or away for a while. A sibling known to
        hold `known_index` keeps its claim, so a short absence is only suspect."""
        self.failed.add(contact.node_id)
        if known_index is not None and 0 <= known_index < self.descriptor.n:
            self.claims[contact.node_id] = (contact, known_index)

    def challenge(self, contact: Contact, rng: random.Random) -> Audit:
        return self.challenge_at(contact, self.draw_block(rng))

    def draw_block(self, rng: random.Random) -> int:
        """A block to challenge a sibling with; drawn before a query that carries it."""
        return rng.randrange(block_count(self.descriptor.share_size))

    def challenge_at(self, contact: Contact, block: int) -> Audit:
        """The audit of the claim `contact` made, at `block`; its answer goes to `on_proof`."""
        _, index = self.claims[contact.node_id]
        audit = Audit(self.pack_id, self.descriptor.owner, index, block)
        self._challenges[contact.node_id] = audit
        return audit

    def on_proof(self, contact: Contact, proof: AuditProof | None) -> bool:
        """Check an audit answer; True when the claim is proven."""
        audit = self._challenges.pop(contact.node_id, None)
        if audit is None:
            return False
        ok = proof is not None and verify_block(
            self.descriptor.roots[audit.index],
            audit.block,
            proof.data,
            list(proof.proof),
            block_count(self.descriptor.share_size),
            self.descriptor.version,
        )
        if not ok:
            self.failed.add(contact.node_id)
            self.flunked.add(contact.node_id)
            if proof is not None or contact.node_id in self._fresh:
                self.lied.add(contact.node_id)
            return False
        self.passed[contact.node_id] = (contact, audit.index)
        held = self.proven.get(audit.index)
        # Two proven holders of one index: keep the closer one in the count.
        if held is None or distance(contact.node_id, self.pack_id) < distance(
            held.node_id, self.pack_id
        ):
            self.proven[audit.index] = contact
        return True

    # ---- decisions -------------------------------------------------------

    @property
    def live(self) -> int:
        return len(self.proven)

    def claimed(self) -> set[int]:
        """Share indices some sibling proved or at least claimed."""
        return {i for _, i in self.claims.values()} | set(self.proven)

    def takers(
        self, closest: list[Contact], avoid: set[bytes] | frozenset[bytes] = frozenset()
    ) -> tuple[Contact, ...]:
        """The peers of `closest` that may take a rebuilt share, closest first.

        Holders already have one; failed peers get nothing new: they lost a share
        or lie about it. Peers in `avoid` are left out too."""
        holding = {c.node_id for c in self.proven.values()} | set(self.claims) | self.failed | avoid
        return tuple(c for c in closest if c.node_id not in holding)

    def repairer(self) -> Contact:
        """The closest proven holder: the one that repairs this set."""
        return min(self.proven.values(), key=lambda c: distance(c.node_id, self.pack_id))

    def plan(
        self,
        closest: list[Contact],
        *,
        threshold: int,
        suspects: set[bytes],
        unseen_grace: set[int] | frozenset[int] = frozenset(),
        avoid: set[bytes] | frozenset[bytes] = frozenset(),
        keeper: bytes | None = None,
    ) -> RepairPlan | None:
        """What to rebuild, if anything, when this holder is the repairer.

        `closest` are the live peers closest to the pack id (a lookup's
        result). `suspects` are node ids that failed recently but are not
        yet counted as lost; their shares are rebuilt only below `threshold`,
        and so are the indices in `unseen_grace`, which nobody claimed lately.
        Peers in `avoid` (failed again and again) get no rebuilt share. `keeper`
        names the holder that repairs, when the caller chose it (default: the
        closest proven holder).
        """
        n = self.descriptor.n
        if self.me is None or self.live < self.descriptor.k:
            return None
        if (keeper or self.repairer().node_id) != self.me.node_id:
            return None
        suspected = {
            index
            for node_id, (_, index) in self.claims.items()
            if node_id in suspects and index not in self.proven
        } | {index for index in unseen_grace if index not in self.proven}
        if self.live < threshold:
            suspected = set()
        missing = tuple(i for i in range(n) if i not in self.proven and i not in suspected)
        if not missing:
            return None
        sources = tuple(sorted(self.proven.items()))
        return RepairPlan(missing, self.takers(closest, avoid), sources)
