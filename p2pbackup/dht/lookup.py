"""An iterative Kademlia node lookup as a state object, sans-IO.

The driver asks `next_queries()` which peers to contact, reports each answer
with `on_reply` or `on_failure`, and stops when `done`. The lookup ends when
the k closest peers it has heard of have all answered or failed, which is
what makes the result the true k closest live peers on a healthy mesh.

With a block function, the k nearest counted are at most `per_block` from
one address block; the rest of a block wait as spares for when those fail.
A flood of identities from a few networks, all naming each other, then
fills a few places of the window, and honest peers fill the others.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from p2pbackup.base.ids import id_int
from p2pbackup.net.contact import Contact
from p2pbackup.wire.messages import Message

# Runs one query of a walk for a caller: the peer, and the query to run.
Paced = Callable[[Contact, Callable[[], Awaitable[Message | None]]], Awaitable[Message | None]]


class _State(enum.Enum):
    NEW = 0
    IN_FLIGHT = 1
    ANSWERED = 2
    FAILED = 3


@dataclass(slots=True, eq=False)  # one per id in a lookup: equal only to itself
class _Candidate:
    contact: Contact
    distance: int
    hop: int
    block: str = ""
    state: _State = _State.NEW


_BY_DISTANCE = operator.attrgetter("distance")  # a C-level sort key: sorted per reply


@dataclass
class LookupStats:
    queries: int = 0
    failures: int = 0
    hops: int = 0


@dataclass(frozen=True)
class LookupOutcome:
    contacts: list[Contact]
    stats: LookupStats
    # Peers the walk passed over unasked (timed out lately, or the caller's `skip`):
    # nearer ones than `contacts` may exist among them.
    passed_over: tuple[Contact, ...] = ()


@dataclass
class Lookup:
    """Find the `k` live peers closest to `target`, `alpha` queries at a time."""

    target: bytes
    k: int = 20
    alpha: int = 3
    local_id: bytes | None = None
    stats: LookupStats = field(default_factory=LookupStats)
    block_of: Callable[[Contact], str] | None = None
    per_block: int = 2

    def __post_init__(self) -> None:
        self._target = id_int(self.target)
        self._candidates: dict[bytes, _Candidate] = {}
        self._shortlist: list[_Candidate] = []  # sorted by distance, never FAILED
        self._in_flight = 0  # kept as states change, not counted over every candidate

    def seed(self, contacts: Iterable[Contact]) -> bool:
        """Start from these contacts; True if any was new to this lookup."""
        return self._learn(contacts, hop=1)

    def _learn(self, contacts: Iterable[Contact], hop: int) -> bool:
        changed = False
        for contact in contacts:
            if contact.node_id == self.local_id or contact.node_id in self._candidates:
                continue
            block = "" if self.block_of is None else self.block_of(contact)
            candidate = _Candidate(contact, id_int(contact.node_id) ^ self._target, hop, block)
            self._candidates[contact.node_id] = candidate
            self._shortlist.append(candidate)
            changed = True
        if changed:
            self._shortlist.sort(key=_BY_DISTANCE)
            # Farther than 3k is never needed: the k closest can only come from nearer
            # peers (and each block needs few spares beyond its own share of the window).
            self._shortlist = self._capped(self._shortlist, 3 * self.k, 3 * self.per_block)
        return changed

    def _capped(self, candidates: list[_Candidate], count: int, per_block: int) -> list[_Candidate]:
        """The first `count` candidates, at most `per_block` of each block."""
        if self.block_of is None:
            return candidates[:count]
        kept: list[_Candidate] = []
        seen: dict[str, int] = {}
        for candidate in candidates:
            if len(kept) >= count:
                break
            taken = seen.get(candidate.block, 0)
            if taken < per_block:
                seen[candidate.block] = taken + 1
                kept.append(candidate)
        return kept

    def _window(self) -> list[_Candidate]:
        return self._capped(self._shortlist, self.k, self.per_block)

    def in_flight(self) -> int:
        return self._in_flight

    def next_queries(self) -> list[Contact]:
        """Peers to query now; each is marked in flight."""
        budget = self.alpha - self.in_flight()
        chosen: list[Contact] = []
        for candidate in self._window():
            if budget <= 0:
                break
            if candidate.state is _State.NEW:
                candidate.state = _State.IN_FLIGHT
                chosen.append(candidate.contact)
                budget -= 1
        self.stats.queries += len(chosen)
        self._in_flight += len(chosen)
        return chosen

    def on_reply(self, contact: Contact, contacts: Iterable[Contact]) -> None:
        candidate = self._candidates.get(contact.node_id)
        if candidate is None or candidate.state is not _State.IN_FLIGHT:
            return
        candidate.state = _State.ANSWERED
        self._in_flight -= 1
        self._learn(contacts, candidate.hop + 1)

    def on_failure(self, contact: Contact) -> None:
        candidate = self._candidates.get(contact.node_id)
        if candidate is None or candidate.state is not _State.IN_FLIGHT:
            return
        candidate.state = _State.FAILED
        self._in_flight -= 1
        self.stats.failures += 1
        if candidate in self._shortlist:  # nearer answers may have pushed it out already
            self._shortlist.remove(candidate)

    @property
    def done(self) -> bool:
        return all(c.state is _State.ANSWERED for c in self._window())

    def result(self) -> list[Contact]:
        """The closest peers that answered, nearest first."""
        answered = [c for c in self._window() if c.state is _State.ANSWERED]
        if answered:
            self.stats.hops = answered[0].hop
        return [c.contact for c in answered]
