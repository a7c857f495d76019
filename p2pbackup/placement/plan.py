"""Placing one pack's shares, sans-IO.

Share i goes to the i-th closest live peer to the pack id. A peer that
refuses (full disk) or fails hands its share to the next closest peer not
yet used, so no peer ever holds two shares of one pack. The plan says which
requests to send; the driver reports how each went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from p2pbackup.net.contact import Contact


@dataclass
class PlacementPlan:
    shares: int
    happy: int
    candidates: Sequence[Contact]
    placed: dict[int, Contact] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    failures: int = 0

    def __post_init__(self) -> None:
        self._next_candidate = 0
        self._in_flight: dict[int, Contact] = {}
        self._unassigned: list[int] = list(range(self.shares))

    def assignments(self) -> list[tuple[int, Contact]]:
        """Shares to send now, each to a peer that has none of this pack."""
        out: list[tuple[int, Contact]] = []
        while self._unassigned and self._next_candidate < len(self.candidates):
            index = self._unassigned.pop(0)
            contact = self.candidates[self._next_candidate]
            self._next_candidate += 1
            self._in_flight[index] = contact
            out.append((index, contact))
        return out

    def on_stored(self, index: int) -> None:
        self.placed[index] = self._in_flight.pop(index)

    def on_refused(self, index: int, reason: str) -> None:
        self._in_flight.pop(index)
        self.refusals.append(reason)
        self._unassigned.append(index)

    def on_failed(self, index: int) -> None:
        self._in_flight.pop(index)
        self.failures += 1
        self._unassigned.append(index)

    @property
    def done(self) -> bool:
        if self._in_flight:
            return False
        return not self._unassigned or self._next_candidate >= len(self.candidates)

    @property
    def happy_enough(self) -> bool:
        return len(self.placed) >= self.happy

    def shortfall(self) -> str:
        """Why the pack could not be placed, in words a user can act on."""
        reasons = sorted(set(self.refusals))
        detail = f"; refusals: {', '.join(reasons[:3])}" if reasons else ""
        return (
            f"only {len(self.placed)} distinct peers took a share of this pack, "
            f"{self.happy} needed (asked {self._next_candidate} of {len(self.candidates)} peers "
            f"found, {self.failures} did not answer{detail})"
        )
