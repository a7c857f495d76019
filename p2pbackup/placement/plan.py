"""Placing one pack's shares, sans-IO.

Share i goes to the i-th closest live peer to the pack id. A peer that
refuses (full disk), fails, or says it stored the share but cannot prove it
hands its share to the next closest peer not yet used, so no peer ever holds
two shares of one pack. The plan says which requests to send; the driver
reports how each went, and only a share reported stored (proven, where the
driver proves) counts as placed.

Given `block_of`, the plan also spreads a pack over address blocks: each
share goes to the closest unused peer in a block holding the fewest of the
pack's shares (placed or on their way). Where the candidates span as many
blocks as there are shares, no block gets two; where they do not, shares
fill the blocks there are, evenly. Identities cost nothing, addresses do,
so many identities in one network cannot gather a pack.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from p2pbackup.net.contact import Contact


@dataclass
class PlacementPlan:
    shares: int
    happy: int
    candidates: Sequence[Contact]
    placed: dict[int, Contact] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    # Who refused, with the reason each gave (a full disk, a quota), for the owner.
    refused: list[tuple[Contact, str]] = field(default_factory=list)
    failures: int = 0
    unproven: int = 0  # peers that said they stored a share and could not prove it
    # The address block of a candidate; None places by distance alone.
    block_of: Callable[[Contact], str] | None = None

    def __post_init__(self) -> None:
        self._asked = 0
        self._remaining: list[Contact] = list(self.candidates)
        self._in_flight: dict[int, Contact] = {}
        self._unassigned: list[int] = list(range(self.shares))

    def assignments(self) -> list[tuple[int, Contact]]:
        """Shares to send now, each to a peer that has none of this pack."""
        out: list[tuple[int, Contact]] = []
        while self._unassigned and self._remaining:
            index = self._unassigned.pop(0)
            contact = self._remaining.pop(self._next_position())
            self._asked += 1
            self._in_flight[index] = contact
            out.append((index, contact))
        return out

    def _next_position(self) -> int:
        """Where in the remaining candidates the next share goes: the closest, or, when
        spreading, the closest in a block holding the fewest of this pack's shares."""
        if self.block_of is None:
            return 0
        block_of = self.block_of
        held = Counter(block_of(c) for c in (*self.placed.values(), *self._in_flight.values()))
        return min(range(len(self._remaining)), key=lambda i: held[block_of(self._remaining[i])])

    def on_stored(self, index: int) -> None:
        self.placed[index] = self._in_flight.pop(index)

    def on_refused(self, index: int, reason: str) -> None:
        contact = self._in_flight.pop(index)
        self.refusals.append(reason)
        self.refused.append((contact, reason))
        self._unassigned.append(index)

    def on_failed(self, index: int) -> None:
        self._in_flight.pop(index)
        self.failures += 1
        self._unassigned.append(index)

    def on_unproven(self, index: int) -> None:
        """The peer said it stored the share, then could not prove it: a failure."""
        self._in_flight.pop(index)
        self.unproven += 1
        self._unassigned.append(index)

    @property
    def done(self) -> bool:
        if self._in_flight:
            return False
        return not self._unassigned or not self._remaining

    @property
    def happy_enough(self) -> bool:
        return len(self.placed) >= self.happy

    def shortfall(self) -> str:
        """Why the pack could not be placed, in words a user can act on."""
        unproven = (
            f", {self.unproven} said they stored one but could not prove it"
            if self.unproven
            else ""
        )
        refused = f"; {self.refusal_summary()}" if self.refused else ""
        # Peers that did not answer may only be away (stopped, asleep, cut off).
        away = "; try again once they are back" if self.failures else ""
        return (
            f"only {len(self.placed)} distinct peers took a share of this pack, "
            f"{self.happy} needed (asked {self._asked} of {len(self.candidates)} peers "
            f"found, {self.failures} did not answer{unproven}){refused}{away}"
        )

    def refusal_summary(self) -> str:
        """Which peers refused a share and why, each once: '2 peers refused shares: a1b2c3
        disk full, d4e5f6 owner quota full'; empty when none did."""
        return refusal_summary((c.node_id, reason) for c, reason in self.refused)


def refusal_summary(refused: Iterable[tuple[bytes, str]], most: int = 5) -> str:
    """Peers (by id) and their reasons as one line, each peer once with its first reason."""
    first: dict[bytes, str] = {}
    for peer, reason in refused:
        first.setdefault(peer, short_reason(reason))
    if not first:
        return ""
    named = [f"{peer.hex()[:6]} {reason}" for peer, reason in first.items()]
    more = f", and {len(named) - most} more" if len(named) > most else ""
    peers = "peer" if len(first) == 1 else "peers"
    return f"{len(first)} {peers} refused shares: {', '.join(named[:most])}{more}"


def short_reason(reason: str) -> str:
    """A holder's reason up to its first colon ('disk full: 3 MiB free...' -> 'disk
    full'), so one line can name several peers; the full one is in the holder's log."""
    head = reason.split(":", 1)[0].strip()
    if len(head) > 80:  # a peer's own words, bounded; cut at a word, and say so
        head = head[:80].rsplit(" ", 1)[0] + "..."
    return head or "refused"
