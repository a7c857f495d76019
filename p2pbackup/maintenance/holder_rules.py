"""Whom a holder trusts with its share set, sans-IO: decision 0021.

A sibling's word moves nothing. A holder drops its copy only when siblings
closer to the pack than itself have *established* (proven over spaced rounds,
`proofs`) n distinct indices, one per holder, our own among them by a vetted
peer; it hands its share (a copy: it keeps its own) only to a vetted closer
peer in an address block holding no share of the set; it trusts as keeper
only a holder it established (or, before anyone is, the closest proven);
rebuilt shares go to vetted peers first and to one block each where blocks
allow. Cheap identities ground close to a pack are neither vetted nor
established, so they can take nothing and erase nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from p2pbackup.base.ids import distance
from p2pbackup.maintenance.survey import RepairPlan, Survey
from p2pbackup.net.contact import Contact

# A node id -> the index it established with us for this pack, or None.
Established = Callable[[bytes], int | None]


@dataclass(frozen=True)
class FirstHand:
    """What this peer saw of others itself (never what they said of themselves)."""

    vetted: Callable[[bytes], bool]  # answered us at its address for the vetting period
    block_of: Callable[[Contact], str]  # its address block, for spreading a set


def keeper_of(
    survey: Survey, me: Contact, established: Established, demoted: Iterable[bytes] = ()
) -> Contact:
    """The holder that repairs the set and whose audits let the others rest.

    The closest of the holders we established and ourselves; before we
    established anyone (right after a backup) the closest proven, ourselves
    included, as before. A keeper `demoted` for leaving the set unrepaired is
    passed over."""
    passed_over = set(demoted) - {me.node_id}
    proven = [c for nid, (c, _) in survey.passed.items() if nid not in passed_over]
    trusted = [c for c in proven if established(c.node_id) is not None]
    pool = [me, *(trusted if trusted else proven)]
    return min(pool, key=lambda c: distance(c.node_id, survey.pack_id))


def n_nearer(node_id: bytes, pack_id: bytes, nearest: list[Contact], n: int) -> bool:
    """Are the `nearest` n known peers (nearest first) all nearer the pack than `node_id`?
    The n-th settles it: distances are distinct."""
    return len(nearest) >= n and distance(nearest[n - 1].node_id, pack_id) < distance(
        node_id, pack_id
    )


def closer_vetted(
    node_id: bytes, pack_id: bytes, contacts: Iterable[Contact], first_hand: FirstHand
) -> frozenset[bytes]:
    """Vetted peers closer to the pack than `node_id`: only these displace it."""
    mine = distance(node_id, pack_id)
    return frozenset(
        c.node_id
        for c in contacts
        if distance(c.node_id, pack_id) < mine and first_hand.vetted(c.node_id)
    )


def may_drop(
    survey: Survey, me: Contact, index: int, first_hand: FirstHand, est: Established
) -> bool:
    """May we delete our copy of share `index`? Only when holders closer to the pack
    than us established n distinct indices (each holder one), ours by a vetted one."""
    mine = distance(me.node_id, survey.pack_id)
    indices: set[int] = set()
    ours_held = False
    for node_id, (contact, proved) in survey.passed.items():
        if node_id == me.node_id or distance(node_id, survey.pack_id) >= mine:
            continue
        if est(node_id) != proved:
            continue
        indices.add(proved)
        ours_held = ours_held or (proved == index and first_hand.vetted(contact.node_id))
    return ours_held and len(indices) >= survey.descriptor.n


def copy_pending(survey: Survey, me: Contact, index: int, first_hand: FirstHand) -> bool:
    """Does a vetted sibling closer than us claim our index? Then only its proofs are
    awaited before our copy may go, and no further copy is handed out."""
    mine = distance(me.node_id, survey.pack_id)
    return any(
        i == index
        and node_id != me.node_id
        and distance(node_id, survey.pack_id) < mine
        and first_hand.vetted(node_id)
        for node_id, (_, i) in survey.claims.items()
    )


def handover_takers(
    survey: Survey, me: Contact, closest: list[Contact], first_hand: FirstHand
) -> list[Contact]:
    """Vetted peers closer than us, among the n closest vetted, that may take a copy.

    Only when n vetted live peers are closer than us (unvetted ones displace
    nobody). Takers hold no share of the set and sit in a block that holds
    none, unless the candidates' blocks are too few to spread the set."""
    n = survey.descriptor.n
    mine = distance(me.node_id, survey.pack_id)
    closer = [
        c
        for c in closest
        if distance(c.node_id, survey.pack_id) < mine and first_hand.vetted(c.node_id)
    ]
    if len(closer) < n:
        return []
    holding = set(survey.claims) | survey.failed | set(survey.passed)
    takers = [c for c in closer[:n] if c.node_id not in holding]
    occupied = {
        first_hand.block_of(c) for nid, (c, _) in survey.claims.items() if nid != me.node_id
    }
    free = [c for c in takers if first_hand.block_of(c) not in occupied]
    if free:
        return free
    blocks = occupied | {first_hand.block_of(c) for c in closer}
    return [] if len(blocks) >= n else takers


def spread_plan(survey: Survey, plan: RepairPlan, first_hand: FirstHand) -> RepairPlan:
    """The plan with its takers in `repair_order`, against the blocks holding a share."""
    holders = [c for c, _ in survey.claims.values()] + ([survey.me] if survey.me else [])
    occupied = {first_hand.block_of(c) for c in holders}
    return RepairPlan(plan.missing, repair_order(plan.targets, occupied, first_hand), plan.sources)


def repair_order(
    takers: Iterable[Contact], occupied: set[str], first_hand: FirstHand
) -> tuple[Contact, ...]:
    """Rebuilt shares' candidates, best first: vetted before unvetted (these only when
    vetted peers cannot bring the set back: durability first), and within each, one
    peer per block not yet holding a share before the rest, closest first."""
    vetted: list[Contact] = []
    unvetted: list[Contact] = []
    for contact in takers:
        (vetted if first_hand.vetted(contact.node_id) else unvetted).append(contact)
    used = set(occupied)
    return (
        *_spread(vetted, used, first_hand.block_of),
        *_spread(unvetted, used, first_hand.block_of),
    )


def _spread(
    contacts: list[Contact], used: set[str], block_of: Callable[[Contact], str]
) -> list[Contact]:
    """One contact per block not in `used` first (adding their blocks), then the rest."""
    first: list[Contact] = []
    rest: list[Contact] = []
    for contact in contacts:
        block = block_of(contact)
        (rest if block in used else first).append(contact)
        used.add(block)
    return first + rest


def near_enough(
    survey: Survey, near: list[Contact], margin: int, *, edge_trusted: bool = False
) -> bool:
    """Did n of the routing table's nearest peers answer, every claim pass its audit,
    and fewer than n - `margin` of those who answered sit closer to the pack than
    us? Then they stand for the set's neighbourhood and the survey needs no lookup
    (decision 0056). A holder near the edge of the n closest looks up as before:
    only a lookup finds newcomers closer than it that its table has not met, and
    they are what rebalancing moves its share to. An index nobody claimed still
    gets a wider lookup (`unseen.look_wider`) before it is rebuilt. With
    `edge_trusted` (a lookup lately found the table complete here, decision 0071)
    the edge alone does not send a holder to look up."""
    assert survey.me is not None
    mine = distance(survey.me.node_id, survey.pack_id)
    answered = [c for c in near if c.node_id in survey.answered]
    closer = sum(distance(c.node_id, survey.pack_id) < mine for c in answered)
    n = survey.descriptor.n
    edge = closer >= n - margin and not edge_trusted
    return len(answered) >= n and not edge and not survey.flunked
